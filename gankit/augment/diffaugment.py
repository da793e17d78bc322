"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

D sees every image, real and fake, through the same random augmentation, in both D's and G's
steps. Each op is differentiable with respect to the images, so G's gradient passes through the
augmentation, and D cannot overfit a small dataset by memorising exact pixels. The ops and their
ranges are the paper's (its official PyTorch code), for images in [-1, 1], NCHW:

- "color": brightness + U(-0.5, 0.5); saturation x U(0, 2) around each pixel's mean over the
  channels (nothing to do for grey images); contrast x U(0.5, 1.5) around each image's mean.
- "translation": shift by a whole number of pixels, up to 1/8 of the side, filling with zeros.
- "cutout": zero one square of half the side, centred at a random place (clipped at the border).

Every draw is per image. The random ops are built on deterministic ones (`adjust_brightness`,
`translate`, `cut_out`, ...) that take the drawn values, so those can be tested exactly.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.errors import UserError

AUGMENT_OPS = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125  # the largest shift, as a fraction of the side
CUTOUT_RATIO = 0.5  # the side of the zeroed square, as a fraction of the image side


def parse_augment_policy(text: str) -> tuple[str, ...]:
    """The ops of a comma-separated policy such as "color,translation,cutout", in order.

    "" and "none" mean no augmentation (an empty tuple). Spaces around names are ignored.
    Raises UserError naming --augment for an unknown or repeated op.
    """
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    ops = tuple(part.strip().lower() for part in text.split(","))
    for op in ops:
        if op not in AUGMENT_OPS:
            raise UserError(f"unknown --augment op {op!r} in {text!r}; use a comma-separated list of "
                            f"{', '.join(AUGMENT_OPS)} (e.g. --augment color,translation,cutout), or none")
    repeated = sorted({op for op in ops if ops.count(op) > 1})
    if repeated:
        raise UserError(f"--augment lists {', '.join(repeated)} more than once in {text!r}; "
                        f"name each op once (e.g. --augment color,translation,cutout)")
    return ops


# --- deterministic ops: the drawn values in, the augmented images out ------------------------

def _per_image(values: Tensor, x: Tensor) -> Tensor:
    """[N] values as [N, 1, 1, 1], on x's device and dtype, to broadcast over an NCHW batch."""
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def adjust_brightness(x: Tensor, delta: Tensor) -> Tensor:
    """Add delta[i] to every pixel of image i."""
    return x + _per_image(delta, x)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Scale each pixel's colour away from its grey (the mean over channels) by factor[i].

    For a one-channel image the mean is the pixel itself, so this returns x unchanged.
    """
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _per_image(factor, x) + mean


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Scale image i away from its own mean (over channels and pixels) by factor[i]."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_image(factor, x) + mean


def translate(x: Tensor, shift_down: Tensor, shift_right: Tensor) -> Tensor:
    """Move image i's content down by shift_down[i] and right by shift_right[i] whole pixels
    (negative moves up / left); pixels moved in from outside are 0.

    Built as a gather from a zero-padded copy, so the gradient reaches every pixel that stays.
    """
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h) - shift_down.to(x.device, torch.long).view(n, 1)
    cols = torch.arange(w, device=x.device).view(1, w) - shift_right.to(x.device, torch.long).view(n, 1)
    # Index 0 and h+1 (w+1) of the padded copy are the zero border: every source outside the
    # image lands on it after the clamp.
    rows = (rows + 1).clamp(0, h + 1)
    cols = (cols + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # [N, H+2, W+2, C]
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)


def cut_out(x: Tensor, top: Tensor, left: Tensor, size: int, width: int | None = None) -> Tensor:
    """Zero, in every channel, the size x size square (size x width rectangle when `width` is
    given) of image i whose top-left pixel is (top[i], left[i]); any part of it outside the
    image is simply not there."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h) - top.to(x.device, torch.long).view(n, 1)
    cols = torch.arange(w, device=x.device).view(1, w) - left.to(x.device, torch.long).view(n, 1)
    inside_rows = (rows >= 0) & (rows < size)  # [N, H]
    inside_cols = (cols >= 0) & (cols < (size if width is None else width))  # [N, W]
    keep = ~(inside_rows.view(n, 1, h, 1) & inside_cols.view(n, 1, 1, w))
    return x * keep.to(x.dtype)


# --- the random ops --------------------------------------------------------------------------

def _rand(n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """n draws of U(0, 1) from `generator` (on its own device), for x's device."""
    device = generator.device if generator is not None else x.device
    return torch.rand(n, device=device, generator=generator).to(x.device)


def _randint(low: int, high: int, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """n integers uniform in [low, high), drawn like `_rand`."""
    device = generator.device if generator is not None else x.device
    return torch.randint(low, high, (n,), device=device, generator=generator).to(x.device)


def random_color(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The paper's "color": brightness, then saturation, then contrast, each drawn per image."""
    n = x.shape[0]
    x = adjust_brightness(x, _rand(n, x, generator) - 0.5)  # U(-0.5, 0.5)
    x = adjust_saturation(x, _rand(n, x, generator) * 2)  # U(0, 2)
    return adjust_contrast(x, _rand(n, x, generator) + 0.5)  # U(0.5, 1.5)


def random_translation(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The paper's "translation": shifts uniform in [-s, s] per axis, s = side / 8 rounded."""
    n, _, h, w = x.shape
    max_down, max_right = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    down = _randint(-max_down, max_down + 1, n, x, generator)
    right = _randint(-max_right, max_right + 1, n, x, generator)
    return translate(x, down, right)


def cutout_size(side: int) -> int:
    """The side of the square "cutout" zeroes in an image of side `side` (half, rounded)."""
    return int(side * CUTOUT_RATIO + 0.5)


def random_cutout(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The paper's "cutout": one square of half the side, its centre uniform over the image.

    As in the paper's code the centre can sit on the border, so part of the square may fall
    outside the image and fewer pixels are zeroed.
    """
    n, _, h, w = x.shape
    size_h, size_w = cutout_size(h), cutout_size(w)
    # The official code draws centres in [0, side + (1 - size % 2)) and subtracts size // 2.
    top = _randint(0, h + (1 - size_h % 2), n, x, generator) - size_h // 2
    left = _randint(0, w + (1 - size_w % 2), n, x, generator) - size_w // 2
    # Non-square images get a rectangle of half of each side, as the official code does.
    return cut_out(x, top, left, size_h, size_w)


_RANDOM_OPS: dict[str, Callable[[Tensor, torch.Generator | None], Tensor]] = {
    "color": random_color, "translation": random_translation, "cutout": random_cutout}


def diff_augment(x: Tensor, policy: str | Sequence[str], generator: torch.Generator | None = None) -> Tensor:
    """DiffAugment images x [N, C, H, W] (1 or 3 channels, in [-1, 1]) with `policy`.

    `policy` is a comma-separated string ("color,translation,cutout"; "" or "none" = return x)
    or the tuple `parse_augment_policy` gives. The ops run in the policy's order, each with its
    own draw per image; the result keeps x's shape and dtype and is differentiable in x (D's
    real and fake inputs both go through it, and G is trained through it). `generator` makes
    the draws repeatable.

    RGBA images (4 channels, from --alpha keep): "color" changes the colour channels only, and
    what translation and cutout uncover is transparent (alpha -1), not half-transparent grey.
    """
    ops = parse_augment_policy(policy) if isinstance(policy, str) else tuple(policy)
    for op in ops:
        if op not in _RANDOM_OPS:
            raise UserError(f"unknown --augment op {op!r}; choose from {', '.join(AUGMENT_OPS)}")
        if x.shape[1] == 4 and op == "color":
            x = torch.cat([random_color(x[:, :3], generator), x[:, 3:]], dim=1)
        elif x.shape[1] == 4:
            # The ops fill with 0; shifting alpha to [0, 2] around them makes the fill alpha -1.
            shifted = torch.cat([x[:, :3], x[:, 3:] + 1], dim=1)
            out = _RANDOM_OPS[op](shifted, generator)
            x = torch.cat([out[:, :3], out[:, 3:] - 1], dim=1)
        else:
            x = _RANDOM_OPS[op](x, generator)
    return x

"""ADA's augmentations of a batch: flips, quarter turns, shifts, zoom, colour, cutout.

After Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"; for NCHW
images in [-1, 1] with 1, 3 or 4 (RGBA) channels.

Each op is applied to each image on its own with probability p, and is differentiable in the
images, so G is trained through it. The ranges are the paper's:

- "xflip": mirror left-right.
- "rot90": rotate by 0, 90, 180 or 270 degrees (non-square images: 0 or 180 only, as a quarter
  turn would change their shape).
- "translation": shift by whole pixels, each axis uniform in [-side/8, side/8] (the paper's "xint").
- "scale": zoom in or out about the centre by 2^N(0, 0.2^2) (bilinear sampling).
- "brightness": add N(0, 0.2^2) to every pixel.
- "contrast": scale away from the image's mean by 2^N(0, 0.5^2).
- "hue": rotate each pixel's colour about the grey axis (r = g = b) by U(-pi, pi).
- "saturation": scale each pixel's colour away from its grey by 2^N(0, 1).
- "cutout": zero one square of half the side (DiffAugment's), off in the default set.

Where the paper pads by reflection, translation and scale here fill what they uncover with 0, as
gankit's DiffAugment does: real and fake images get the same fill, so D learns nothing from it that
tells them apart, and for RGBA images (--alpha keep) the fill is made transparent, so nothing is
invented at the border. Hue and saturation do nothing to grey images; colour ops never touch alpha.

The deterministic ops take the drawn values (testable exactly); `ada_augment` draws them.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.augment.diffaugment import (
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    cut_out,
    cutout_size,
    translate,
)
from gankit.errors import UserError

# In the order they are applied, whatever order the user names them in: geometry first, then
# colour, then cutout (the paper's order).
ADA_OPS = ("xflip", "rot90", "translation", "scale", "brightness", "contrast", "hue", "saturation", "cutout")
DEFAULT_ADA_OPS = ("xflip", "rot90", "translation", "scale", "brightness", "contrast", "hue", "saturation")
COLOUR_OPS = frozenset({"brightness", "contrast", "hue", "saturation"})
FILLING_OPS = frozenset({"translation", "scale", "cutout"})  # uncover pixels (filled with 0)

TRANSLATION_RATIO = 0.125
SCALE_STD = 0.2 * math.log(2)
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5 * math.log(2)
SATURATION_STD = math.log(2)


def parse_ada_ops(text: str) -> tuple[str, ...]:
    """The ops of --ada, in the order they run: "none"/"" -> (), "default" -> DEFAULT_ADA_OPS, or a
    comma-separated list of op names (which may include "default", e.g. "default,cutout").
    Raises UserError naming --ada for an unknown name."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    wanted: set[str] = set()
    for name in (part.strip().lower() for part in text.split(",")):
        if name == "default":
            wanted.update(DEFAULT_ADA_OPS)
        elif name in ADA_OPS:
            wanted.add(name)
        else:
            raise UserError(f"--ada: unknown op {name!r} in {text!r}; use default, none, or a comma-separated "
                            f"list of {', '.join(ADA_OPS)} (e.g. --ada xflip,translation,brightness,contrast)")
    return tuple(op for op in ADA_OPS if op in wanted)


# --- deterministic ops: the drawn values in, the augmented images out ------------------------

def _where(chosen: Tensor, changed: Tensor, x: Tensor) -> Tensor:
    """Image i of `changed` where chosen[i], else image i of x, unchanged to the bit."""
    return torch.where(chosen.to(x.device).view(-1, 1, 1, 1), changed, x)


def flip_x(x: Tensor, flip: Tensor) -> Tensor:
    """Mirror image i left-right where flip[i] (bool)."""
    return _where(flip, x.flip(3), x)


def rotate90(x: Tensor, quarter_turns: Tensor) -> Tensor:
    """Rotate image i counter-clockwise by quarter_turns[i] (0..3) times 90 degrees. A quarter turn
    would change a non-square image's shape: there odd turns count as none."""
    turns = quarter_turns.to(x.device, torch.long) % 4
    out = x
    for k in ((1, 2, 3) if x.shape[2] == x.shape[3] else (2,)):
        out = _where(turns == k, torch.rot90(x, k, dims=(2, 3)), out)
    return out


def scale(x: Tensor, factor: Tensor) -> Tensor:
    """Zoom image i about its centre by factor[i] (> 1 enlarges), sampling bilinearly; what a zoom
    out uncovers is 0. factor 1 gives the image back (to rounding)."""
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    inverse = 1 / factor.to(device=x.device, dtype=x.dtype)  # the grid says where each output pixel reads
    theta[:, 0, 0] = inverse
    theta[:, 1, 1] = inverse
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def hue_rotation_matrices(angle: Tensor) -> Tensor:
    """[N, 3, 3] rotations of RGB about the grey axis (1, 1, 1)/sqrt(3) by angle[i] radians
    (Rodrigues' formula)."""
    a = angle.view(-1, 1, 1)
    v = torch.full((3,), 1 / math.sqrt(3), dtype=angle.dtype, device=angle.device)
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]],
                         dtype=angle.dtype, device=angle.device) / math.sqrt(3)
    eye = torch.eye(3, dtype=angle.dtype, device=angle.device)
    return torch.cos(a) * eye + torch.sin(a) * cross + (1 - torch.cos(a)) * torch.outer(v, v)


def rotate_hue(x: Tensor, angle: Tensor) -> Tensor:
    """Rotate every pixel's colour of RGB image i about the grey axis by angle[i] radians: grey
    pixels stay, 2*pi/3 turns red into green, green into blue, blue into red. Grey (1-channel)
    images come back unchanged."""
    if x.shape[1] != 3:
        return x
    rotations = hue_rotation_matrices(angle.to(device=x.device, dtype=x.dtype))
    return torch.einsum("nij,njhw->nihw", rotations, x)


# --- the random ops: each draws its values per image and says which images it applies to -----

class _Draws:
    """Per-image random values for a batch of n images on `device`, from `generator` (torch's
    default when None) on its own device."""

    def __init__(self, n: int, device: torch.device, generator: torch.Generator | None):
        self.n, self.device, self.generator = n, device, generator
        self.source = generator.device if generator is not None else device

    def uniform(self) -> Tensor:
        return torch.rand(self.n, device=self.source, generator=self.generator).to(self.device)

    def normal(self) -> Tensor:
        return torch.randn(self.n, device=self.source, generator=self.generator).to(self.device)

    def integers(self, low: int, high: int) -> Tensor:
        return torch.randint(low, high, (self.n,), device=self.source, generator=self.generator).to(self.device)

    def chosen(self, p: Tensor) -> Tensor:
        """Which images the op applies to: uniform < p, compared on the device (no host sync)."""
        return self.uniform() < p


# Each returns (which images to change, every image changed); ada_augment keeps the others as
# they were, to the bit. The op is computed on the whole batch: no shapes depend on p.
Chosen = tuple[Tensor, Tensor]


def random_xflip(x: Tensor, p: Tensor, draw: _Draws) -> Chosen:
    return draw.chosen(p), x.flip(3)


def random_rot90(x: Tensor, p: Tensor, draw: _Draws) -> Chosen:
    chosen, turns = draw.chosen(p), draw.integers(0, 4)
    if x.shape[2] != x.shape[3]:
        turns = turns - turns % 2  # 0 or 180 degrees: a quarter turn would change the shape
    return chosen, rotate90(x, turns)


def random_translation(x: Tensor, p: Tensor, draw: _Draws) -> Chosen:
    _, _, h, w = x.shape
    max_down, max_right = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    chosen = draw.chosen(p)
    down, right = draw.integers(-max_down, max_down + 1), draw.integers(-max_right, max_right + 1)
    return chosen, translate(x, down, right)


def random_scale(x: Tensor, p: Tensor, draw: _Draws) -> Chosen:
    return draw.chosen(p), scale(x, torch.exp(draw.normal() * SCALE_STD))


def random_brightness(x: Tensor, p: Tensor, draw: _Draws) -> Chosen:
    return draw.chosen(p), adjust_brightness(x, draw.normal() * BRIGHTNESS_STD)


def random_contrast(x: Tensor, p: Tensor, draw: _Draws) -> Chosen:
    return draw.chosen(p), adjust_contrast(x, torch.exp(draw.normal() * CONTRAST_STD))


def random_hue(x: Tensor, p: Tensor, draw: _Draws) -> Chosen:
    return draw.chosen(p), rotate_hue(x, (draw.uniform() * 2 - 1) * math.pi)


def random_saturation(x: Tensor, p: Tensor, draw: _Draws) -> Chosen:
    return draw.chosen(p), adjust_saturation(x, torch.exp(draw.normal() * SATURATION_STD))


def random_cutout(x: Tensor, p: Tensor, draw: _Draws) -> Chosen:
    """DiffAugment's cutout: a square of half the side, centred uniformly (it may overhang)."""
    _, _, h, w = x.shape
    size_h, size_w = cutout_size(h), cutout_size(w)
    chosen = draw.chosen(p)
    top = draw.integers(0, h + (1 - size_h % 2)) - size_h // 2
    left = draw.integers(0, w + (1 - size_w % 2)) - size_w // 2
    return chosen, cut_out(x, top, left, size_h, size_w)


RANDOM_OPS: dict[str, Callable[[Tensor, Tensor, _Draws], Chosen]] = {
    "xflip": random_xflip, "rot90": random_rot90, "translation": random_translation, "scale": random_scale,
    "brightness": random_brightness, "contrast": random_contrast, "hue": random_hue,
    "saturation": random_saturation, "cutout": random_cutout}


def ada_augment(x: Tensor, ops: tuple[str, ...], p: Tensor | float,
                generator: torch.Generator | None = None) -> Tensor:
    """Images x [N, C, H, W] (C = 1, 3 or 4, in [-1, 1]) through each of `ops` (names from
    ADA_OPS, run in ADA_OPS' order), each op applied to each image with probability p: a 0-d tensor
    on x's device, so no value is read back to the host. Images an op skips come through it
    unchanged to the bit, so p = 0 gives x back. Differentiable in x; keeps its shape and dtype."""
    if not torch.is_tensor(p):
        p = torch.tensor(float(p), device=x.device)
    draw = _Draws(x.shape[0], x.device, generator)
    rgba = x.shape[1] == 4
    for op in ADA_OPS:
        if op not in ops:
            continue
        apply = RANDOM_OPS[op]
        if rgba and op in COLOUR_OPS:
            chosen, rgb = apply(x[:, :3], p, draw)
            changed = torch.cat([rgb, x[:, 3:]], dim=1)
        elif rgba and op in FILLING_OPS:
            # The ops fill with 0; shifting alpha to [0, 2] around them makes the fill alpha -1
            # (transparent), not half-transparent.
            chosen, out = apply(torch.cat([x[:, :3], x[:, 3:] + 1], dim=1), p, draw)
            changed = torch.cat([out[:, :3], out[:, 3:] - 1], dim=1)
        else:
            chosen, changed = apply(x, p, draw)
        x = _where(chosen, changed, x)
    return x

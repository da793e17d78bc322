"""Random views of images for contrastive training: crop, flip, colour jitter, greyscale.

SimCLR's recipe, written in plain PyTorch on whole batches (torchvision is not a dependency of
gankit), with every random choice drawn from one ``torch.Generator`` so that a seed gives the same
views. Gradients are not needed: views are inputs, not outputs, of the network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Strengths chosen for 28-64 px pictures. The crop keeps at least a fifth of the area (SimCLR's
# 8% leaves too little of a 32 px picture to recognise); colour jitter is SimCLR's 0.4/0.4/0.4/0.1
# with probability 0.8, and a fifth of the views are grey, so that colour alone cannot match views.
CROP_SCALE = (0.2, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}
JITTER_P = 0.8
GREY_P = 0.2
# ITU-R 601 luma, as gankit's own RGB -> grey conversion.
_LUMA = (0.299, 0.587, 0.114)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 1, H, W] grey by ITU-R 601 weights."""
    weights = torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def crop_and_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random crop of each image (area share in CROP_SCALE, aspect in CROP_RATIO) resized back to
    the full size, mirrored left-right half the time: one affine resampling per batch."""
    n = len(x)
    area = _uniform(n, *CROP_SCALE, generator)
    ratio = torch.exp(_uniform(n, math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator))
    # Sides as fractions of the full side; the grid spans [-1, 1], so a side s leaves 1 - s of room.
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    centre_x = (torch.rand(n, generator=generator) * 2 - 1) * (1 - width)
    centre_y = (torch.rand(n, generator=generator) * 2 - 1) * (1 - height)
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width * mirror, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma of RGB images by ``turns`` (fractions of a full circle) in YIQ space."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = torch.linalg.inv(to_yiq)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
    angle = turns * 2 * math.pi
    cos, sin = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,njhw->nihw", from_yiq, yiq)


def colour_jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue changes on images in [0, 1], each image with
    probability JITTER_P; grey images get brightness and contrast only."""
    n = len(x)
    keep = (torch.rand(n, generator=generator) >= JITTER_P).view(-1, 1, 1, 1)
    out = x

    def factor(strength: float) -> torch.Tensor:
        return _uniform(n, 1 - strength, 1 + strength, generator).view(-1, 1, 1, 1)

    out = (out * factor(JITTER["brightness"])).clamp(0, 1)
    grey = _luma(out) if out.shape[1] == 3 else out
    mean = grey.mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * factor(JITTER["contrast"]) + mean).clamp(0, 1)
    if out.shape[1] == 3:
        grey = _luma(out)
        out = ((out - grey) * factor(JITTER["saturation"]) + grey).clamp(0, 1)
        out = _rotate_hue(out, _uniform(n, -JITTER["hue"], JITTER["hue"], generator)).clamp(0, 1)
    return torch.where(keep, x, out)


def random_grey(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """RGB images turned grey (kept 3 channels) with probability GREY_P each."""
    if x.shape[1] != 3:
        return x
    grey = (torch.rand(len(x), generator=generator) < GREY_P).view(-1, 1, 1, 1)
    return torch.where(grey, _luma(x).expand_as(x), x)


def random_view(images_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random view of each uint8 image [N, C, H, W] (C 1 or 3), as float in [-1, 1]."""
    x = images_uint8.to(torch.float32) / 255.0
    x = crop_and_flip(x, generator)
    x = colour_jitter(x, generator)
    x = random_grey(x, generator)
    return x * 2 - 1

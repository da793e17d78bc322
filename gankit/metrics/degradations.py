"""Real pictures made worse in known ways, for checking what a feature extractor can see.

Each function takes uint8 pictures [N, C, H, W] (C 1 or 3) and returns new uint8 pictures of the
same shape; every random choice comes from the ``torch.Generator`` passed in, so a seed gives the
same degraded set. The families, and what a generator that fails that way looks like:

- structure: tiles shuffled, two pictures blended. Colours and texture are kept, every object is
  destroyed: what a GAN draws when it has learnt the palette and the strokes but not the things.
- texture: Gaussian blur, additive noise, a 2-px checkerboard (the transposed-convolution artefact).
- colour: each channel quantised to a few levels.
- blob: each picture shrunk to 4x4 and enlarged back: only the layout of colour is left, the
  "blob" an early or weak GAN draws.

Variety (a subset of the classes or clusters) is a choice of pictures, not a change of pixels:
``sensitivity.py`` makes it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The blob baseline's side: a 4x4 picture keeps where the colour is and nothing of any shape.
BLOB_SIDE = 4


def _as_float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 pictures [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    return images.to(torch.float32)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def _non_identity_permutations(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """[n, k] random permutations of range(k), none of them the identity (k >= 2): a "shuffled"
    picture that came out unshuffled would make the shuffle look weaker than it is."""
    perms = torch.argsort(torch.rand(n, k, generator=generator), dim=1)
    identity = (perms == torch.arange(k)).all(dim=1)
    perms[identity] = torch.roll(perms[identity], 1, dims=1)  # a cyclic shift moves every tile
    return perms


def tile_shuffle(images: torch.Tensor, tiles: int, generator: torch.Generator) -> torch.Tensor:
    """Each picture cut into tiles x tiles equal tiles, put back in a random order (a different
    order per picture, never the original one). A border that does not divide stays in place."""
    x = images.clone()
    n, c, h, w = x.shape
    th, tw = h // tiles, w // tiles
    if tiles < 2 or th < 1 or tw < 1:
        raise ValueError(f"cannot cut {h}x{w} pictures into {tiles}x{tiles} tiles")
    body = x[:, :, : th * tiles, : tw * tiles]
    # [N, C, ty, th, tx, tw] -> [N, ty*tx, C, th, tw]
    blocks = body.reshape(n, c, tiles, th, tiles, tw).permute(0, 2, 4, 1, 3, 5).reshape(n, tiles * tiles, c, th, tw)
    perms = _non_identity_permutations(n, tiles * tiles, generator)
    blocks = blocks[torch.arange(n)[:, None], perms]
    body = blocks.reshape(n, tiles, tiles, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, th * tiles, tw * tiles)
    x[:, :, : th * tiles, : tw * tiles] = body
    return x


def blend_pairs(images: torch.Tensor, weight: float, generator: torch.Generator) -> torch.Tensor:
    """Each picture mixed with another one of the set: (1 - weight) * own + weight * other.
    weight 0.5 is the average of two pictures: two half-objects, neither of them a thing."""
    x = _as_float(images)
    n = len(x)
    if n < 2:
        raise ValueError("blending needs at least 2 pictures")
    # A random partner that is never the picture itself: a shift of a random order.
    order = torch.randperm(n, generator=generator)
    partner = torch.empty(n, dtype=torch.long)
    partner[order] = torch.roll(order, 1)
    return _to_uint8((1 - weight) * x + weight * x[partner])


def gaussian_blur(images: torch.Tensor, radius: float) -> torch.Tensor:
    """Gaussian blur whose standard deviation is ``radius`` pixels (as PIL's GaussianBlur), a
    kernel 3 sigma to each side, borders mirrored."""
    x = _as_float(images)
    half = max(1, math.ceil(3 * radius))
    taps = torch.arange(-half, half + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / radius) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    pad = min(half, x.shape[-1] - 1, x.shape[-2] - 1)
    if pad < half:  # tiny pictures: a kernel wider than the picture cannot be mirrored
        kernel = kernel[half - pad : half + pad + 1]
        kernel = kernel / kernel.sum()
    horizontal = kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), horizontal, groups=c)
    x = F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect"), vertical, groups=c)
    return _to_uint8(x)


def additive_noise(images: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Independent Gaussian noise of ``std`` grey levels (of 255) on every pixel value."""
    x = _as_float(images)
    return _to_uint8(x + std * torch.randn(x.shape, generator=generator))


def checkerboard(images: torch.Tensor, amplitude: float) -> torch.Tensor:
    """+amplitude and -amplitude grey levels on alternate pixels: a pattern of 2-px period, the
    artefact of stride-2 transposed convolutions."""
    x = _as_float(images)
    h, w = x.shape[-2:]
    sign = ((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2) * 2 - 1
    return _to_uint8(x + amplitude * sign.to(torch.float32))


def quantise(images: torch.Tensor, levels: int) -> torch.Tensor:
    """Each channel reduced to ``levels`` evenly spaced values (levels**3 colours for RGB)."""
    if levels < 2:
        raise ValueError(f"quantising needs at least 2 levels, got {levels}")
    x = _as_float(images)
    step = 255.0 / (levels - 1)
    return _to_uint8((x / step).round() * step)


def blob(images: torch.Tensor, side: int = BLOB_SIDE) -> torch.Tensor:
    """Each picture shrunk to side x side (antialiased) and enlarged back (bilinear)."""
    x = _as_float(images)
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return _to_uint8(F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False))

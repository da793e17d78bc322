"""The transforms ``open_dataset`` applies after reading: class filter, channels, size."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from gankit.data.imageset import ImageSet
from gankit.errors import UserError
from gankit.images import flatten_alpha

# ITU-R BT.601 luma weights (what Pillow's convert("L") uses) for R, G, B.
LUMA_601 = (0.299, 0.587, 0.114)
# Images per float batch: bounds the temporary float memory on large datasets.
_CHUNK = 1024


def apply_transforms(
    ds: ImageSet,
    *,
    classes: Sequence[int] | None = None,
    image_size: int | None = None,
    channels: int | None = None,
) -> ImageSet:
    """Filter to ``classes``, convert to ``channels``, resize to ``image_size``, in that order
    (filter first so the other two touch only the images that are kept)."""
    if classes is not None:
        ds = filter_classes(ds, classes)
    if channels is not None and channels != ds.image_shape[0]:
        ds = dataclasses.replace(ds, images=convert_channels(ds.images, channels), mmap_file=None)
    if image_size is not None:
        resized = resize_square(ds.images, image_size)
        if resized is not ds.images:
            ds = dataclasses.replace(ds, images=resized, mmap_file=None)
    return ds


def filter_classes(ds: ImageSet, classes: Sequence[int]) -> ImageSet:
    """Keep only images whose label is in ``classes``; labels keep their original values."""
    if ds.labels is None:
        raise UserError(f"dataset {ds.name} has no labels, so it cannot be filtered by class")
    n = ds.num_classes
    wanted = sorted({int(c) for c in classes})
    if not wanted:
        raise UserError("the class filter is empty: name at least one class")
    bad = [c for c in wanted if not 0 <= c < n]
    if bad:
        names = f" ({', '.join(f'{i}={c}' for i, c in enumerate(ds.class_names))})" if ds.class_names else ""
        raise UserError(
            f"class {', '.join(map(str, bad))} out of range for {ds.name}: classes are 0..{n - 1}{names}"
        )
    keep = torch.isin(ds.labels, torch.tensor(wanted, dtype=ds.labels.dtype, device=ds.labels.device))
    if not bool(keep.any()):
        raise UserError(f"dataset {ds.name} has no images of class {', '.join(map(str, wanted))}")
    return dataclasses.replace(ds, images=ds.images[keep], labels=ds.labels[keep], mmap_file=None)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 [N, C, H, W] to ``channels`` (1 grey, 3 RGB or 4 RGBA).

    Grey is repeated to RGB; RGB becomes grey with the ITU-R 601 luma weights, rounded to
    nearest. RGBA loses its alpha by compositing onto white (``flatten_alpha``), what a
    transparent picture looks like on a page, then goes on to grey if asked; grey and RGB gain
    an opaque alpha (255), so they look the same as RGBA.
    """
    if channels not in (1, 3, 4):
        raise UserError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    c = images.shape[1]
    if c == channels:
        return images
    if c == 4:
        # In chunks, like _chunked: flatten_alpha works in int32, 4 bytes per pixel value.
        flat = torch.cat([flatten_alpha(images[i : i + _CHUNK]) for i in range(0, max(len(images), 1), _CHUNK)])
        return convert_channels(flat, channels)
    if channels == 4:
        opaque = torch.full_like(images[:, :1], 255)
        return torch.cat([convert_channels(images, 3), opaque], dim=1)
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor(LUMA_601, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return _chunked(images, lambda x: (x * weights).sum(dim=1, keepdim=True))


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, C, H, W] to [N, C, size, size]: scale so the shorter side is ``size``, then
    crop the centre.

    Scaling is bilinear with antialiasing (torch ``interpolate``, ``antialias=True``) on float
    values, rounded back to uint8; when the shorter side already equals ``size`` only the
    crop happens, so pixel values are untouched.
    """
    if size < 1:
        raise UserError(f"image size must be a positive number of pixels, got {size}")
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if h <= w:
        new_h, new_w = size, max(size, round(w * size / h))
    else:
        new_h, new_w = max(size, round(h * size / w)), size
    if (new_h, new_w) != (h, w):
        images = _chunked(
            images,
            lambda x: F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True),
        )
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return images[:, :, top : top + size, left : left + size].contiguous()


def _chunked(images: torch.Tensor, fn) -> torch.Tensor:
    """Apply a float function to uint8 images in chunks; round and clamp back to uint8."""
    out = [
        fn(images[i : i + _CHUNK].float()).round_().clamp_(0, 255).to(torch.uint8)
        for i in range(0, len(images), _CHUNK)
    ]
    if not out:  # no images: still return the right shape and dtype
        probe = fn(images[:1].float().new_zeros((1, *images.shape[1:])))
        return torch.empty((0, *probe.shape[1:]), dtype=torch.uint8, device=images.device)
    return torch.cat(out)

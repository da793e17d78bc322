"""Conversions between the generator's float images and 8-bit pixels.

Networks work on float images in [-1, 1] (the range of a tanh output); files and
pictures hold uint8 pixels in [0, 255]. Both are [N, C, H, W] tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """Map uint8 pixels [N, C, H, W] to float32 in [-1, 1] (0 -> -1, 255 -> 1)."""
    if images_uint8.dtype != torch.uint8:
        raise ValueError(f"to_float expects uint8 images, got {images_uint8.dtype}")
    return images_uint8.to(torch.float32) / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map float images in [-1, 1] to uint8 pixels; values outside the range are clipped.

    Rounding (rather than truncating) makes this the exact inverse of `to_float`
    on uint8 input, so a round trip through the float range loses nothing.
    """
    pixels = ((images.detach().to(torch.float32) + 1.0) * 127.5).round().clamp(0, 255)
    return pixels.to(torch.uint8)


def save_png(image_chw_uint8, path) -> None:
    """Write one uint8 image [C, H, W] (a tensor or numpy array) as a PNG.

    C=1 is saved as a greyscale ("L") image, C=3 as "RGB". Missing parent folders
    are created.
    """
    arr = image_chw_uint8
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(
            f"save_png expects a uint8 [C, H, W] image with C in (1, 3), "
            f"got dtype {arr.dtype} and shape {tuple(arr.shape)}"
        )
    hwc = arr.transpose(1, 2, 0)
    # Pillow picks "L" for a 2-D uint8 array and "RGB" for [H, W, 3].
    image = Image.fromarray(hwc[:, :, 0] if arr.shape[0] == 1 else hwc)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")

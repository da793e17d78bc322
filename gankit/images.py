"""Conversions between the generator's float images and 8-bit pixels.

Networks work on float images in [-1, 1] (the range of a tanh output); files and
pictures hold uint8 pixels in [0, 255]. Both are [N, C, H, W] tensors, C in {1, 3, 4}
(grey, RGB, RGBA with straight, not premultiplied, alpha: the PNG convention).
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


def flatten_alpha(images_uint8: torch.Tensor, background: int = 255) -> torch.Tensor:
    """Composite RGBA uint8 images [..., 4, H, W] onto a plain grey level: [..., 3, H, W].

    Each colour channel becomes round((c * a + background * (255 - a)) / 255): alpha 0 gives
    the background, 255 the colour. This is for consumers that cannot show transparency
    (feature extractors, GIFs, `--channels 3`); white (255) is the default because that is
    what a transparent picture looks like on a page. The sum is done exactly in integers: its
    quotient by 255 is never exactly halfway, so `(n + 127) // 255` is the rounded value.
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() < 3 or images_uint8.shape[-3] != 4:
        raise ValueError(f"flatten_alpha expects uint8 RGBA images [..., 4, H, W], "
                         f"got {images_uint8.dtype} {tuple(images_uint8.shape)}")
    if not 0 <= int(background) <= 255:
        raise ValueError(f"flatten_alpha: background must be a grey level 0..255, got {background}")
    x = images_uint8.to(torch.int32)  # 255 * 255 overflows uint8 and int16
    colour, alpha = x[..., :3, :, :], x[..., 3:, :, :]
    blended = colour * alpha + int(background) * (255 - alpha)
    return torch.div(blended + 127, 255, rounding_mode="floor").to(torch.uint8)


def save_png(image_chw_uint8, path) -> None:
    """Write one uint8 image [C, H, W] (a tensor or numpy array) as a PNG.

    C=1 is saved as a greyscale ("L") image, C=3 as "RGB", C=4 as "RGBA" (alpha kept).
    Missing parent folders are created.
    """
    arr = image_chw_uint8
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[0] not in (1, 3, 4):
        raise ValueError(
            f"save_png expects a uint8 [C, H, W] image with C in (1, 3, 4), "
            f"got dtype {arr.dtype} and shape {tuple(arr.shape)}"
        )
    hwc = arr.transpose(1, 2, 0)
    # Pillow picks "L" for a 2-D uint8 array, "RGB" for [H, W, 3] and "RGBA" for [H, W, 4].
    image = Image.fromarray(hwc[:, :, 0] if arr.shape[0] == 1 else hwc)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")

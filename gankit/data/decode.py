"""One picture file, as users' folders hold them, to uint8 pixels at the training size.

The policy, stated once (docs/guide.md repeats it for users):

- **Modes.** Grey modes ("1", "L", "I;16", "I", "F") give one grey channel; 16-bit values are
  scaled by 1/257, 32-bit integer and float pictures by their own range (floats already in [0, 1]
  by 255). Palette pictures are grey when every entry is grey, else colour. CMYK, YCbCr, LAB and
  HSV become RGB.
- **Transparency** (RGBA, LA, PA, and palette or RGB/L pictures with a transparent colour) is
  composited onto a white or black background (``alpha="white"|"black"``), before resizing so
  that hidden colours of transparent pixels never bleed in; ``alpha="keep"`` gives RGBA.
- **Orientation.** EXIF orientation is applied (a phone's portrait photo stands upright).
- **Animations.** The first frame of an animated GIF, WebP or PNG.
- **Shape.** ``fit="crop"`` scales the shorter side to the size and crops the centre; ``"pad"``
  scales the longer side and pads with the background (transparent under ``keep``); ``"stretch"``
  scales both sides to the size. Pictures smaller than the size are upscaled and counted.
- **Bombs.** A picture of more than :data:`PIXEL_LIMIT` pixels is refused before it is decoded:
  a small file can claim a huge canvas and fill the memory.

Imports neither torch nor the rest of gankit, so that decoding worker processes start fast.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

FITS = ("crop", "pad", "stretch")
ALPHAS = ("white", "black", "keep")
# Pillow warns above this many pixels (about 9,500 x 9,500) and is a sane ceiling for a training
# picture; a decompression bomb claims far more.
PIXEL_LIMIT = Image.MAX_IMAGE_PIXELS or 89_478_485

_GREY_MODES = {"1", "L", "I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}


class BadPicture(Exception):
    """A file that is not a usable picture; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Picture:
    """A decoded picture: ``pixels`` uint8 [C, H, W] with C = 1 (grey), 3 (RGB) or 4 (RGBA)."""

    pixels: np.ndarray
    upscaled: bool  # smaller than the size asked for, so scaled up


def header_size(source: str | bytes | BinaryIO) -> tuple[int, int]:
    """(width, height) as shown, after EXIF orientation, reading only the header."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with Image.open(source) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)  # tags 5-8 turn the picture a quarter
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for broken files
        raise BadPicture(_reason(e)) from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def decode(source: str | bytes | BinaryIO, size: int | None, fit: str = "crop", alpha: str = "white") -> Picture:
    """Decode one picture (a path, the file's bytes, or a binary file) by the policy above.

    ``size`` None keeps the picture's own size (the caller checked that all pictures share one).
    Raises BadPicture with the reason for anything Pillow cannot read, or a picture too large.
    """
    if fit not in FITS or alpha not in ALPHAS:
        raise ValueError(f"fit must be one of {FITS} and alpha one of {ALPHAS}, got {fit!r}, {alpha!r}")
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                w, h = img.size
                if w * h > PIXEL_LIMIT:
                    raise BadPicture(_too_large(f"{w} x {h} pixels"))
                if size is not None and img.format == "JPEG":
                    img.draft("RGB" if img.mode != "L" else "L", _scaled_size(w, h, size, fit))
                img.load()  # the first frame of an animation: Image.open stands on frame 0
                img = ImageOps.exif_transpose(img)
                img, grey = _normalise_mode(img)
    except BadPicture:
        raise
    except Exception as e:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError, ...
        reason = _reason(e)
        if isinstance(source, str):  # Pillow names the file; the caller names it already
            reason = reason.replace(f" '{source}'", "").replace(source, "this file")
        raise BadPicture(reason) from None
    if alpha == "keep":
        img = img.convert("RGBA")
    elif img.mode == "RGBA":
        background = Image.new("RGBA", img.size, _BACKGROUNDS[alpha])
        img = Image.alpha_composite(background, img).convert("L" if grey else "RGB")
    upscaled = False
    if size is not None:
        img, upscaled = _fit(img, size, fit, alpha)
    pixels = np.asarray(img)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return Picture(np.ascontiguousarray(pixels), upscaled)


_BACKGROUNDS = {"white": (255, 255, 255, 255), "black": (0, 0, 0, 255), "keep": (0, 0, 0, 0)}


def _normalise_mode(img: Image.Image) -> tuple[Image.Image, bool]:
    """(the picture as "L", "RGB" or "RGBA" (anything with transparency), whether it is grey)."""
    mode = img.mode
    transparent = mode in _ALPHA_MODES or "transparency" in img.info
    if mode in ("P", "PA"):
        rgba = img.convert("RGBA")
        arr = np.asarray(rgba)
        grey = bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
        if transparent:
            return rgba, grey
        return (rgba.convert("L") if grey else rgba.convert("RGB")), grey
    if mode in _GREY_MODES:
        grey = _to_eight_bit_grey(img)
        if transparent:  # an L or I picture with one transparent grey value
            mask = Image.fromarray(np.asarray(img.convert("RGBA"))[..., 3])
            return Image.merge("RGBA", (grey, grey, grey, mask)), True
        return grey, True
    if mode in ("LA", "La"):
        return img.convert("RGBA"), True
    if transparent:
        return img.convert("RGBA"), False
    return img.convert("RGB"), False


def _to_eight_bit_grey(img: Image.Image) -> Image.Image:
    """Grey pictures of any depth as 8-bit "L": Pillow's convert("L") clips 16-bit and float
    values at 255 instead of scaling them, which turns most 16-bit scans white."""
    if img.mode in ("1", "L"):
        return img.convert("L")
    arr = np.asarray(img).astype(np.float64)
    if img.mode.startswith("I;16"):
        scaled = arr / 257.0
    else:
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if img.mode == "F" and lo >= 0.0 and hi <= 1.0:
            scaled = arr * 255.0
        elif lo >= 0.0 and hi <= 255.0:
            scaled = arr
        elif lo >= 0.0 and hi <= 65535.0 and img.mode == "I":
            scaled = arr / 257.0  # 16-bit PNGs open as "I" in some Pillow versions
        else:
            scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8), "L")


def _scaled_size(w: int, h: int, size: int, fit: str) -> tuple[int, int]:
    """The size a picture of w x h is scaled to before cropping or padding."""
    if fit == "stretch":
        return size, size
    scale = size / (min(w, h) if fit == "crop" else max(w, h))
    if fit == "crop":
        return max(size, round(w * scale)), max(size, round(h * scale))
    return max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))


def _fit(img: Image.Image, size: int, fit: str, alpha: str) -> tuple[Image.Image, bool]:
    w, h = img.size
    new_w, new_h = _scaled_size(w, h, size, fit)
    upscaled = new_w > w or new_h > h
    if (new_w, new_h) != (w, h):
        # Lanczos; reducing_gap first shrinks large pictures by whole factors (fast, and as
        # good where the factor is large). Pillow premultiplies alpha itself for RGBA.
        img = img.resize((new_w, new_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if fit == "crop" and (new_w, new_h) != (size, size):
        left, top = (new_w - size) // 2, (new_h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    elif fit == "pad" and (new_w, new_h) != (size, size):
        fill = _BACKGROUNDS[alpha]
        canvas = Image.new(img.mode, (size, size), fill[0] if img.mode == "L" else fill[:len(img.mode)])
        canvas.paste(img, ((size - new_w) // 2, (size - new_h) // 2))
        img = canvas
    return img, upscaled


def _too_large(size: str) -> str:
    return (f"too large: {size}, more than the limit of {PIXEL_LIMIT:,} "
            "(a decompression bomb, or far larger than a training picture)")


def _reason(e: Exception) -> str:
    """A short reason for a failed decode: the exception's type and first line."""
    text = str(e).splitlines()[0] if str(e) else ""
    name = type(e).__name__
    if isinstance(e, Image.DecompressionBombWarning | Image.DecompressionBombError):
        # Pillow's own check at open: "Image size (N pixels) exceeds limit of M pixels, ..."
        found = re.search(r"\((\d+) pixels\)", text)
        size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        return _too_large(size)
    return f"{name}: {text}" if text else name


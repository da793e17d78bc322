"""Images stored as numpy arrays: a ``.npy`` file, or a ``.npz`` file with images and labels."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from gankit.data.imageset import ImageSet
from gankit.errors import UserError

# Names tried, in order, inside an .npz (the spellings of common tutorials and np.savez).
IMAGE_KEYS = ("images", "x", "X", "x_train", "arr_0")
LABEL_KEYS = ("labels", "y", "Y", "y_train", "arr_1")


def read_arrays(path: str | Path) -> ImageSet:
    """Read a ``.npy`` (images only) or ``.npz`` (images, optional labels) file.

    Layouts [N, H, W], [N, H, W, C] and [N, C, H, W] with C in {1, 3, 4} are accepted, 4 being
    RGBA with straight alpha, kept as 4 channels. See `to_uint8_nchw` for how the layout is
    told. uint8 is used as is;
    floats in [0, 1] are scaled by 255, floats in [-1, 1] map by (x + 1) * 127.5; integers
    in 0..255 are taken as pixel values. Pickled objects are never loaded.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise UserError(f"{path}: expected a .npy or .npz file")
    try:
        loaded = np.load(path, allow_pickle=False)
    # MemoryError: numpy allocates the shape the header claims before reading the data,
    # so a corrupt header asking for terabytes fails here rather than in the data.
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, MemoryError) as e:
        raise UserError(f"{path}: not a readable {suffix} file ({e})") from None
    # np.load goes by content, not by name: a zip saved as .npy gives an NpzFile.
    if isinstance(loaded, np.ndarray):
        x, y, keys = loaded, None, ""
    else:
        with loaded:
            x, y, keys = _from_npz(loaded, path)
    images = to_uint8_nchw(x, path)
    labels = None
    if y is not None:
        labels = _labels(y, len(images), path)
    return ImageSet(
        images=torch.from_numpy(images),
        labels=None if labels is None else torch.from_numpy(labels),
        name=str(path),
        source=f"array file {path}{keys}",
    )


def _from_npz(npz: np.lib.npyio.NpzFile, path: Path) -> tuple[np.ndarray, np.ndarray | None, str]:
    names = list(npz.files)
    img_key = next((k for k in IMAGE_KEYS if k in names), None)
    if img_key is None:
        raise UserError(
            f"{path}: no images array: expected one named {', '.join(IMAGE_KEYS)}; "
            f"the file has {', '.join(names) or 'no arrays'}"
        )
    lab_key = next((k for k in LABEL_KEYS if k in names), None)
    try:
        x = npz[img_key]
        y = None if lab_key is None else npz[lab_key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, MemoryError) as e:
        # zlib.error: damaged compressed data inside an intact zip; MemoryError: as above.
        raise UserError(f"{path}: cannot read its arrays ({e})") from None
    keys = f" (images {img_key!r}" + (f", labels {lab_key!r})" if lab_key else ", no labels)")
    return x, y, keys


def to_uint8_nchw(x: np.ndarray, path: Path | str) -> np.ndarray:
    """Validate an image array and return it as contiguous uint8 [N, C, H, W].

    A 4-d array is channels-last when its last dim is 1 or 3 and dim 1 is not, else
    channels-first when dim 1 is 1 or 3; only then is 4 (RGBA) considered, the same way. So
    every array that read before RGBA was accepted reads the same ([N, 4, W, 3] is still
    4-pixel-high RGB), and where both dims could be channels, channels-first wins.
    """
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        first, last = x.shape[1], x.shape[-1]
        if (last in (1, 3) and first not in (1, 3)) or (last == 4 and first not in (1, 3, 4)):
            x = x.transpose(0, 3, 1, 2)
        elif first not in (1, 3, 4):
            raise UserError(
                f"{path}: cannot tell the channels in shape {list(x.shape)}: expected "
                "[N, H, W], [N, H, W, C] or [N, C, H, W] with C = 1, 3 or 4 (RGBA)"
            )
    else:
        raise UserError(
            f"{path}: images must be [N, H, W], [N, H, W, C] or [N, C, H, W]; got shape {list(x.shape)}"
        )
    if 0 in x.shape:
        raise UserError(f"{path}: holds no images (shape {list(x.shape)})")
    return np.ascontiguousarray(_to_uint8(x, path))


def _to_uint8(x: np.ndarray, path: Path | str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    # dtype.kind, not issubdtype(np.integer): numpy counts timedelta64 as an integer type,
    # but its values are durations that int() cannot take.
    if x.dtype.kind in "iu":
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise UserError(f"{path}: integer pixels must be 0..255, found {lo}..{hi}")
        return x.astype(np.uint8)
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise UserError(f"{path}: images contain NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo >= 0.0 and hi <= 1.0:
            scaled = x.astype(np.float32) * 255.0
        elif lo >= -1.0 and hi <= 1.0:
            scaled = (x.astype(np.float32) + 1.0) * 127.5
        else:
            raise UserError(
                f"{path}: float pixels must lie in [0, 1] or [-1, 1], found {lo:g}..{hi:g}; "
                "convert them to uint8 0..255 first"
            )
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    raise UserError(f"{path}: unsupported image dtype {x.dtype}: use uint8, an integer type or float")


def _labels(y: np.ndarray, n: int, path: Path) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # Keras-style [N, 1] label columns
    if y.ndim != 1:
        raise UserError(f"{path}: labels must be a 1-D array, got shape {list(y.shape)}")
    if len(y) != n:
        raise UserError(f"{path}: {len(y)} labels for {n} images")
    if y.dtype.kind == "f":
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise UserError(f"{path}: labels must be whole numbers")
    elif y.dtype.kind not in "iu":  # as for pixels: no bool, timedelta or datetime
        raise UserError(f"{path}: labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise UserError(f"{path}: labels must be >= 0, found {int(y.min())}")
    return y

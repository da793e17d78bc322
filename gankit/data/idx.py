"""Reader for the IDX format of MNIST-style files, gzip-compressed or not, fully validated."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from gankit.errors import UserError

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions: N x H x W
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension: N
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes and return its array (writable, uint8).

    ``magic`` is the expected magic number (:data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`).
    The file may be gzip-compressed whatever its name says. Raises UserError naming the
    file for a bad gzip stream, a bad magic number, or a length that does not match the
    dimensions in the header.
    """
    path = Path(path)
    data = _read_bytes(path)
    kind = "image" if magic == IMAGES_MAGIC else "label"
    if len(data) < 4:
        raise UserError(f"{path}: not an IDX file: only {len(data)} bytes")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise UserError(
            f"{path}: bad magic number 0x{found:08x}, expected 0x{magic:08x} for an IDX {kind} file"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)  # Python ints: a corrupt header cannot overflow this
    actual = len(data) - header
    if actual != expected:
        shape = " x ".join(str(d) for d in dims)
        raise UserError(
            f"{path}: wrong length: the header says {shape} = {expected} bytes of data, "
            f"the file has {actual} (truncated or corrupt; delete it and fetch it again)"
        )
    # Copy so the array is writable (torch.from_numpy warns on read-only buffers).
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the file starts with the gzip magic."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror or e}") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: corrupt gzip data ({e}); delete it and fetch it again") from None

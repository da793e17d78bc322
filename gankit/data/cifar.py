"""CIFAR-10, python version: pickled batches in a directory or inside the original archive."""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from gankit.data import locate
from gankit.data.download import download
from gankit.data.imageset import ImageSet
from gankit.data.safe_pickle import safe_loads
from gankit.errors import UserError

NAME = "cifar10"
DESCRIPTION = "CIFAR-10 objects, 32x32 RGB, 50,000 train + 10,000 test, 10 classes"
BATCH_DIR = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_PIXELS = 3 * 32 * 32


def find_source(files: list[str], data_dir: str | None) -> tuple[Path | None, list[Path]]:
    """First batch directory holding all ``files``, or archive; and the directories searched.

    In each search directory, ``cifar-10-batches-py/`` is tried, then the directory itself,
    then ``cifar-10-python.tar.gz``.
    """
    dirs = locate.search_dirs(NAME, data_dir, ("cifar-10",))
    for d in dirs:
        for batch_dir in (d / BATCH_DIR, d):
            if all((batch_dir / f).is_file() for f in files):
                return batch_dir, dirs
        if (d / ARCHIVE).is_file():
            return d / ARCHIVE, dirs
    return None, dirs


def open_cifar10(splits: list[str], data_dir: str | None, download_ok: bool) -> ImageSet:
    """Read ``splits`` of CIFAR-10 (concatenated in order) into an ImageSet."""
    files = [f for split in splits for f in SPLIT_FILES[split]]
    source, dirs = find_source(files, data_dir)
    failure = ""
    if source is None and download_ok:
        try:
            source = download(URL, locate.cache_dir(NAME) / ARCHIVE, md5=ARCHIVE_MD5)
        except UserError as e:
            failure = str(e)
    if source is None:
        raise UserError(_missing_message(files, dirs, download_ok, failure))

    if source.is_file():
        blobs = _read_archive(source, files + ["batches.meta"])
        meta = blobs.get("batches.meta")
    else:
        blobs = _read_dir(source, files)
        meta = _maybe_read(source / "batches.meta")
    images, labels = [], []
    for f in files:
        x, y = parse_batch(blobs[f], f"{source}/{f}" if source.is_dir() else f"{source}:{f}")
        images.append(x)
        labels.append(y)
    return ImageSet(
        images=torch.from_numpy(np.concatenate(images)),
        labels=torch.from_numpy(np.concatenate(labels)),
        name=NAME,
        source=f"CIFAR-10 python batches {', '.join(files)} in {source}",
        class_names=_class_names(meta),
    )


def parse_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 3, 32, 32] and labels int64 [N] from one pickled batch."""
    batch = safe_loads(data, where)
    if not isinstance(batch, dict):
        raise UserError(f"{where}: expected a pickled dict, got {type(batch).__name__}")
    x = batch.get(b"data", batch.get("data"))
    y = batch.get(b"labels", batch.get("labels"))
    if x is None or y is None:
        keys = ", ".join(repr(k) for k in batch)
        raise UserError(f"{where}: a CIFAR batch needs keys b'data' and b'labels'; it has {keys}")
    if not isinstance(x, np.ndarray):
        # The real files hold an array; converting arbitrary nested lists could fail
        # inside numpy (ragged rows) or build a huge object array.
        raise UserError(f"{where}: b'data' must be a uint8 array, got {type(x).__name__}")
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != _PIXELS or len(x) == 0:
        raise UserError(f"{where}: b'data' must be uint8 [N, {_PIXELS}], N > 0, got {x.dtype} {list(x.shape)}")
    try:
        y = np.asarray(y, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{where}: b'labels' is not a list of integers") from None
    if len(y) != len(x):
        raise UserError(f"{where}: {len(y)} labels for {len(x)} images")
    if len(y) and (y.min() < 0 or y.max() >= len(CLASS_NAMES)):
        raise UserError(f"{where}: labels must be 0..9, found {int(y.min())}..{int(y.max())}")
    # Each row is the red plane, then green, then blue, each 32x32 row-major.
    return x.reshape(-1, 3, 32, 32).copy(), y


def _read_dir(batch_dir: Path, files: list[str]) -> dict[str, bytes]:
    out = {}
    for f in files:
        try:
            out[f] = (batch_dir / f).read_bytes()
        except OSError as e:
            raise UserError(f"{batch_dir / f}: cannot read: {e.strerror or e}") from None
    return out


def _read_archive(archive: Path, wanted: list[str]) -> dict[str, bytes]:
    """The named members (matched by base name), read straight from the archive: nothing is
    extracted to disk."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted and base not in out:
                    out[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"{archive}: corrupt or unreadable tar archive ({e})") from None
    missing = [f for f in wanted if f not in out and f != "batches.meta"]
    if missing:
        raise UserError(f"{archive}: archive lacks {', '.join(missing)}; is it the CIFAR-10 python version?")
    return out


def _maybe_read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _class_names(meta: bytes | None) -> list[str]:
    """Names from batches.meta when present and sane, else the standard list."""
    if meta:
        try:
            names = safe_loads(meta, "batches.meta").get(b"label_names")
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
            if len(names) == len(CLASS_NAMES):
                return names
        except (UserError, AttributeError, TypeError, UnicodeDecodeError):
            pass  # the names are cosmetic: fall back rather than refuse good image data
    return list(CLASS_NAMES)


def _missing_message(files: list[str], dirs: list[Path], tried: bool, failure: str) -> str:
    lines = [
        f"dataset {NAME}: cannot find the CIFAR-10 python batches ({', '.join(files)}).",
        f"Expected data_batch_1..data_batch_5 and test_batch in a {BATCH_DIR}/ directory, "
        f"or the archive {ARCHIVE}.",
        locate.data_dir_hint(dirs),
    ]
    if tried:
        lines.append(f"Downloading {URL} into {locate.cache_dir(NAME)} failed: {failure}")
    else:
        lines.append(f"Downloading was not allowed; the archive is at {URL}")
    return "\n".join(lines)

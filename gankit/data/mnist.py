"""MNIST and Fashion-MNIST: the standard four IDX files, found on disk or downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gankit.data import locate
from gankit.data.download import download
from gankit.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from gankit.data.imageset import ImageSet
from gankit.errors import UserError

# split -> (images stem, labels stem); files may end in .gz or not.
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxDataset:
    """A dataset made of the four MNIST-layout IDX files."""

    name: str
    description: str
    mirrors: tuple[str, ...]  # base URLs, tried in order; each + "<stem>.gz"
    md5: dict[str, str]  # "<stem>.gz" -> md5 of the published file
    class_names: tuple[str, ...]
    subdirs: tuple[str, ...] = ()  # extra places under --data-dir (torchvision's layout)


# Checksums are those of the published .gz files (the same ones torchvision verifies).
MNIST = IdxDataset(
    name="mnist",
    description="MNIST handwritten digits, 28x28 grey, 60,000 train + 10,000 test, 10 classes",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    class_names=tuple(str(d) for d in range(10)),
    subdirs=("MNIST/raw",),
)

FASHION_MNIST = IdxDataset(
    name="fashion-mnist",
    description="Fashion-MNIST clothing, 28x28 grey, 60,000 train + 10,000 test, 10 classes",
    mirrors=(
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    subdirs=("FashionMNIST/raw",),
)


# name -> definition; looked up at open time (so tests can point a dataset at local URLs).
DATASETS: dict[str, IdxDataset] = {ds.name: ds for ds in (MNIST, FASHION_MNIST)}


def candidate_names(stem: str) -> tuple[str, ...]:
    """File names accepted for one IDX file: gzipped, plain, and the dotted variant
    (``train-images.idx3-ubyte``) some mirrors use for the uncompressed files."""
    dotted = stem.replace("-idx", ".idx")
    return (f"{stem}.gz", stem, dotted, f"{dotted}.gz")


def find_files(ds: IdxDataset, stems: list[str], data_dir: str | None) -> tuple[dict[str, Path], list[Path]]:
    """Locate each stem's file; return ({stem: path} for those found, directories searched)."""
    dirs = locate.search_dirs(ds.name, data_dir, ds.subdirs)
    found = {}
    for stem in stems:
        path = locate.find_first(dirs, candidate_names(stem))
        if path is not None:
            found[stem] = path
    return found, dirs


def open_idx_dataset(ds: IdxDataset, splits: list[str], data_dir: str | None, download_ok: bool) -> ImageSet:
    """Read ``splits`` (e.g. ["train", "test"]) of ``ds`` and concatenate them in that order."""
    stems = [stem for split in splits for stem in SPLIT_FILES[split]]
    found, dirs = find_files(ds, stems, data_dir)
    missing = [s for s in stems if s not in found]
    failure = ""
    if missing and download_ok:
        failure = _download_missing(ds, missing, found)
        missing = [s for s in stems if s not in found]
    if missing:
        raise UserError(_missing_message(ds, missing, dirs, download_ok, failure))

    images, labels = [], []
    for split in splits:
        img_path, lab_path = (found[s] for s in SPLIT_FILES[split])
        x = read_idx(img_path, IMAGES_MAGIC)
        y = read_idx(lab_path, LABELS_MAGIC)
        if 0 in x.shape:
            # A valid IDX file can say 0 images or 0 x 0 pixels; later steps (resizing,
            # batching) would then fail far from the file, so refuse it here.
            raise UserError(f"{img_path}: holds no image data (header says {' x '.join(map(str, x.shape))})")
        if len(x) != len(y):
            raise UserError(
                f"{lab_path}: has {len(y)} labels but {img_path} has {len(x)} images; "
                "the two files do not belong together"
            )
        if len(y) and int(y.max()) >= len(ds.class_names):
            raise UserError(
                f"{lab_path}: label {int(y.max())} out of range 0..{len(ds.class_names) - 1} "
                f"for {ds.name}"
            )
        images.append(x)
        labels.append(y)
    x = np.concatenate(images)[:, None]  # [N, 1, H, W]
    y = np.concatenate(labels).astype(np.int64)
    return ImageSet(
        images=torch.from_numpy(x),
        labels=torch.from_numpy(y),
        name=ds.name,
        source=_describe_source([found[s] for s in stems]),
        class_names=list(ds.class_names),
    )


def _download_missing(ds: IdxDataset, missing: list[str], found: dict[str, Path]) -> str:
    """Download missing files into the cache, adding them to ``found``; return why any failed."""
    target = locate.cache_dir(ds.name)
    for stem in missing:
        fname = f"{stem}.gz"
        reasons = []
        for base in ds.mirrors:
            try:
                found[stem] = download(base + fname, target / fname, md5=ds.md5[fname])
                break
            except UserError as e:  # network, checksum, or an unwritable cache directory
                reasons.append(str(e))
        else:
            # Every mirror failed; the rest would fail the same way, and each try can cost a
            # timeout, so stop here.
            return "; ".join(reasons)
    return ""


def _missing_message(ds: IdxDataset, missing: list[str], dirs: list[Path], tried: bool, failure: str) -> str:
    all_files = "\n".join(f"  {stem}.gz" for pair in SPLIT_FILES.values() for stem in pair)
    lines = [
        f"dataset {ds.name}: cannot find {', '.join(missing)} (.gz or uncompressed).",
        f"{ds.name} is these four files (gzip-compressed or not):\n{all_files}",
        locate.data_dir_hint(dirs),
    ]
    if tried:
        lines.append(f"Downloading into {locate.cache_dir(ds.name)} failed: {failure}")
    else:
        lines.append("Downloading was not allowed, so nothing was fetched.")
    lines.append(f"Download sources: {', '.join(ds.mirrors)}")
    return "\n".join(lines)


def _describe_source(paths: list[Path]) -> str:
    """'name, name in DIR' per directory, so a source line stays short."""
    by_dir: dict[Path, list[str]] = {}
    for p in paths:
        by_dir.setdefault(p.parent, []).append(p.name)
    return "; ".join(f"{', '.join(names)} in {d}" for d, names in by_dir.items())

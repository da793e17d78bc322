"""Reference features of real data, computed once per dataset + split + extractor and cached.

The cache key holds everything that changes the numbers (dataset, split, transforms, how many
images, a digest of their pixels, the extractor and a fingerprint of its weights), so a cached
file is never stale, even for a folder whose pictures were rewritten; a corrupt cache file is
recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gankit.atomic import atomic_write
from gankit.data import ImageSet, open_dataset
from gankit.errors import UserError


def cache_dir() -> Path:
    """$GANKIT_CACHE/reference, or ~/.cache/gankit/reference."""
    root = os.environ.get("GANKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "gankit") / "reference"


@dataclass
class RealSet:
    """Real images chosen for a reference or a floor, and what they are in words."""

    images: torch.Tensor
    labels: torch.Tensor | None
    description: str


@dataclass
class Features:
    features: np.ndarray  # float64 [N, D]
    logits: np.ndarray | None  # float64 [N, K] when the extractor classifies
    labels: np.ndarray | None  # the real labels, when known
    description: str


def _subset(data: ImageSet, n: int | None, seed: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of n images chosen with a fixed seed (all of them, in order, when n is None or >= size)."""
    pool = torch.arange(len(data))
    if exclude is not None:
        keep = torch.ones(len(data), dtype=torch.bool)
        keep[exclude] = False
        pool = pool[keep]
    if n is None or n >= len(pool):
        return pool
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    return pool[order[:n]].sort().values


def reference_and_floor(dataset: str, *, n_reference: int | None, n_floor: int, data_dir=None,
                        classes=None, image_size=None, channels=None, fit: str = "crop",
                        alpha: str = "white") -> tuple[RealSet, RealSet]:
    """The reference set (the test split) and the floor set (real images that are not the reference:
    a train subset; for a source without a test split, the two are disjoint random parts of it).
    `fit` and `alpha` decode pictures as the run being scored was trained on them."""
    opts = dict(data_dir=data_dir, classes=classes, image_size=image_size, channels=channels, fit=fit, alpha=alpha)
    train = open_dataset(dataset, split="train", **opts)
    try:
        test = open_dataset(dataset, split="test", **opts)
    except UserError:  # no test split (mnist-5k, folders, arrays): split the one set in two
        test = None
    if test is not None:
        ref_idx = _subset(test, n_reference, seed=1)
        floor_idx = _subset(train, n_floor, seed=2)
        ref = RealSet(test.images[ref_idx], None if test.labels is None else test.labels[ref_idx],
                      f"{len(ref_idx):,} {test.name} test images")
        floor = RealSet(train.images[floor_idx], None if train.labels is None else train.labels[floor_idx],
                        f"{len(floor_idx):,} {train.name} train images")
        return ref, floor
    half = len(train) // 2
    ref_idx = _subset(train, min(n_reference or half, half), seed=1)
    floor_idx = _subset(train, min(n_floor, len(train) - len(ref_idx)), seed=2, exclude=ref_idx)
    labels = train.labels
    ref = RealSet(train.images[ref_idx], None if labels is None else labels[ref_idx],
                  f"{len(ref_idx):,} {train.name} images (it has no test split: a fixed random part)")
    floor = RealSet(train.images[floor_idx], None if labels is None else labels[floor_idx],
                    f"{len(floor_idx):,} other {train.name} images")
    return ref, floor


def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def cached_features(real: RealSet, extractor, key_parts: dict, use_cache: bool = True) -> Features:
    """Features of `real` under `extractor`, from the cache when the same key was computed before."""
    pixels = hashlib.blake2b(real.images.contiguous().numpy().data, digest_size=16).hexdigest()
    key = {**key_parts, "extractor": extractor.fingerprint, "what": real.description, "pixels": pixels}
    path = cache_dir() / f"{_key(key)}.npz"
    labels = None if real.labels is None else real.labels.numpy()
    if use_cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                logits = f["logits"] if f["logits"].size else None
                return Features(f["features"].astype(np.float64), None if logits is None else logits.astype(np.float64),
                                labels, real.description)
        except Exception:  # noqa: BLE001 - a torn or foreign cache file: recompute it
            pass
    feats, logits = extractor(real.images)
    if use_cache:
        _save_npz(path, features=feats.astype(np.float32),
                  logits=np.zeros(0, np.float32) if logits is None else logits.astype(np.float32))
        feats = feats.astype(np.float32).astype(np.float64)  # the same numbers a cache hit will give
        logits = None if logits is None else logits.astype(np.float32).astype(np.float64)
    return Features(feats, logits, labels, real.description)


def _save_npz(path: Path, **arrays) -> None:
    """Atomic write: a crash leaves no half file for the next run to trust."""
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except OSError:
        pass  # a read-only cache only costs time, never correctness

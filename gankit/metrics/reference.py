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
from gankit.data.name_groups import picture_groups
from gankit.data.picture_names import kept_picture_names
from gankit.errors import UserError
from gankit.metrics.evaluator_split import holdout_indices


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
    key: str | None = None  # the cache key of real features: what was computed from them is cached under it


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
                        alpha: str = "white", holdout: dict | None = None,
                        reference_split: str = "test") -> tuple[RealSet, RealSet]:
    """The reference set (the test split) and the floor set (real images that are not the reference:
    a train subset; for a source without a test split, the two are disjoint random parts of it).
    `fit` and `alpha` decode pictures as the run being scored was trained on them.

    `reference_split` "train" swaps the roles where there is a test split: the reference is the
    train split (papers' FID on CIFAR-10: 50,000 samples against the 50,000 training images) and
    the floor a part of the test split.

    `holdout`: the split an extractor trained on part of the train split held out (its file's meta,
    `holdout.holdout_meta`). The floor then comes from the held-out pictures, and the reference
    from the test split or, without one, from the pictures the extractor trained on."""
    opts = dict(data_dir=data_dir, classes=classes, image_size=image_size, channels=channels, fit=fit, alpha=alpha)
    train = open_dataset(dataset, split="train", **opts)
    try:
        test = open_dataset(dataset, split="test", **opts)
    except UserError:  # no test split (mnist-5k, folders, arrays): split the one set in two
        test = None
    if reference_split not in ("train", "test"):
        raise ValueError(f"reference_split must be train or test, got {reference_split!r}")
    if reference_split == "train" and test is None:
        raise UserError(f"--reference train: {dataset} has no test split, so its reference is already a part of "
                        "its only set of images; drop --reference")
    if holdout is not None and int(holdout.get("pictures", -1)) == len(train):
        return _holdout_reference_and_floor(train, None if reference_split == "train" else test, holdout,
                                            n_reference, n_floor)
    if reference_split == "train":
        train, test = test, train  # the train split is drawn as the reference, the test split as the floor
    if test is not None:
        ref_idx = _subset(test, n_reference, seed=1)
        floor_idx = _subset(train, n_floor, seed=2)
        ref_what, floor_what = ("train", "test") if reference_split == "train" else ("test", "train")
        ref = RealSet(test.images[ref_idx], None if test.labels is None else test.labels[ref_idx],
                      f"{len(ref_idx):,} {test.name} {ref_what} images")
        floor = RealSet(train.images[floor_idx], None if train.labels is None else train.labels[floor_idx],
                        f"{len(floor_idx):,} {train.name} {floor_what} images")
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


def _holdout_groups(train: ImageSet, holdout: dict) -> list[str] | None:
    """The group key of every picture of ``train`` by the rule the extractor's split used (None:
    every picture its own group). The folder was just read with the file's options, so listing
    its names finds the prepared cache again."""
    rule = holdout.get("groups_rule", "picture")
    if rule == "picture":
        return None
    names = kept_picture_names(train.name, image_size=train.image_shape[-1], fit=str(holdout.get("fit", "crop")),
                               alpha="keep" if train.image_shape[0] == 4 else "white")
    if names is None or len(names) != len(train):
        raise UserError(f"{train.name}: the extractor held out pictures by --holdout-groups {rule}, which needs "
                        "the image folder it was trained on; pass that folder as --dataset")
    return picture_groups(names, rule)


def _holdout_reference_and_floor(train: ImageSet, test: ImageSet | None, holdout: dict, n_reference: int | None,
                                 n_floor: int) -> tuple[RealSet, RealSet]:
    """`reference_and_floor` for an extractor that held out part of `train` (see there)."""
    kept, held = holdout_indices(len(train), float(holdout["fraction"]), int(holdout["seed"]),
                                 groups=_holdout_groups(train, holdout))
    floor_idx = _subset(train, n_floor, seed=2, exclude=kept)
    floor = RealSet(train.images[floor_idx], None if train.labels is None else train.labels[floor_idx],
                    f"{len(floor_idx):,} {train.name} images held out from the extractor's training")
    if test is not None:
        ref_idx = _subset(test, n_reference, seed=1)
        ref = RealSet(test.images[ref_idx], None if test.labels is None else test.labels[ref_idx],
                      f"{len(ref_idx):,} {test.name} test images")
        return ref, floor
    pick = _subset(train, n_reference, seed=1, exclude=held)
    ref = RealSet(train.images[pick], None if train.labels is None else train.labels[pick],
                  f"{len(pick):,} {train.name} images the extractor trained on (it has no test split)")
    return ref, floor


def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def cached_features(real: RealSet, extractor, key_parts: dict, use_cache: bool = True) -> Features:
    """Features of `real` under `extractor`, from the cache when the same key was computed before."""
    pixels = hashlib.blake2b(real.images.contiguous().numpy().data, digest_size=16).hexdigest()
    key = {**key_parts, "extractor": extractor.fingerprint, "what": real.description, "pixels": pixels}
    digest = _key(key)
    path = cache_dir() / f"{digest}.npz"
    labels = None if real.labels is None else real.labels.numpy()
    if use_cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                logits = f["logits"] if f["logits"].size else None
                return Features(f["features"].astype(np.float64), None if logits is None else logits.astype(np.float64),
                                labels, real.description, digest if use_cache else None)
        except Exception:  # noqa: BLE001 - a torn or foreign cache file: recompute it
            pass
    feats, logits = extractor(real.images)
    if use_cache:
        _save_npz(path, features=feats.astype(np.float32),
                  logits=np.zeros(0, np.float32) if logits is None else logits.astype(np.float32))
        feats = feats.astype(np.float32).astype(np.float64)  # the same numbers a cache hit will give
        logits = None if logits is None else logits.astype(np.float32).astype(np.float64)
    return Features(feats, logits, labels, real.description, digest if use_cache else None)


def cached_radii(reference: Features, k: int, compute) -> np.ndarray:
    """The k-NN radii of the reference's features (what precision/recall and density/coverage
    measure against), computed once per reference and k: `compute(features, k)` makes them."""
    path = cache_dir() / f"{reference.key}-knn{k}.npy" if reference.key else None
    if path is not None and path.exists():
        try:
            radii = np.load(path, allow_pickle=False)
            if radii.shape == (len(reference.features),):
                return radii
        except Exception:  # noqa: BLE001 - torn or foreign: recompute
            pass
    radii = compute(reference.features, k)
    if path is not None:
        try:
            atomic_write(path, lambda f: np.save(f, radii))
        except OSError:
            pass
    return radii


def cached_scores(parts: dict, compute) -> dict:
    """Scores of real features against real features (the floor), which only change with them:
    computed once, kept as JSON under a key of `parts` (both sets' keys, the metrics)."""
    path = cache_dir() / f"{_key(parts)}-scores.json"
    if path.exists():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - torn or foreign: recompute
            pass
    result = compute()
    try:
        atomic_write(path, lambda f: f.write(json.dumps(result).encode()))
    except (OSError, TypeError):
        pass
    return result


def _save_npz(path: Path, **arrays) -> None:
    """Atomic write: a crash leaves no half file for the next run to trust."""
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except OSError:
        pass  # a read-only cache only costs time, never correctness

"""``gankit train-evaluator --self-supervised``: train the contrastive extractor, check it, save it.

It trains on the kept 80% of the training pictures (``holdout.split_holdout``) and checks itself on
the held-out 20%: the FID of held-out pictures against the kept ones (the floor: small), the FID
of the same held-out pictures blurred (a clearly different set: large), and, where the pictures
have labels, how often a held-out picture's 5 nearest kept pictures in feature space name its
class. The file's meta records all three, with the split, so that `gankit eval` takes its
real-data floor from the same held-out pictures.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import gankit
from gankit.data import ImageSet
from gankit.metrics import scores
from gankit.metrics.contrastive import (
    BATCH_SIZE,
    STEPS,
    ContrastiveExtractor,
    save_contrastive,
    train_contrastive,
)
from gankit.metrics.evaluator_split import (
    HOLDOUT_FRACTION,
    HOLDOUT_SEED,
    holdout_meta,
    split_holdout,
)
from gankit.metrics.sensitivity import check_extractor
from gankit.metrics.sensitivity import describe_check as describe_sensitivity

# Pictures per side of the quality check: enough for a stable FID of 128-d features, few enough
# that the check takes seconds after minutes of training.
CHECK_PICTURES = 5000
# The blurred set: pictures shrunk to a quarter of their side and enlarged back. Every shape is
# still there, the detail is gone: what a generator that learnt only the layout would draw.
BLUR_FACTOR = 4
KNN = 5


def blurred(images_uint8: torch.Tensor, factor: int = BLUR_FACTOR) -> torch.Tensor:
    """uint8 images shrunk ``factor`` times (antialiased) and enlarged back to their size."""
    h, w = images_uint8.shape[-2:]
    x = images_uint8.to(torch.float32)
    small = F.interpolate(x, size=(max(1, h // factor), max(1, w // factor)), mode="bilinear", antialias=True)
    return F.interpolate(small, size=(h, w), mode="bilinear").round().clamp(0, 255).to(torch.uint8)


def knn_accuracy(kept: np.ndarray, kept_labels: np.ndarray, held: np.ndarray, held_labels: np.ndarray,
                 k: int = KNN) -> float:
    """Share of held-out pictures whose k nearest kept pictures (cosine) vote for their class."""
    a = kept / np.linalg.norm(kept, axis=1, keepdims=True).clip(1e-12)
    b = held / np.linalg.norm(held, axis=1, keepdims=True).clip(1e-12)
    nearest = np.argsort(-(b @ a.T), axis=1)[:, :k]
    votes = kept_labels[nearest]
    predicted = np.array([np.bincount(row).argmax() for row in votes])
    return float((predicted == held_labels).mean())


def _first(images: torch.Tensor, n: int) -> torch.Tensor:
    """Up to n images spread over the set (a seeded choice, so the check is repeatable)."""
    if len(images) <= n:
        return images
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(HOLDOUT_SEED))[:n]
    return images[pick.sort().values]


def quality_check(extractor: ContrastiveExtractor, kept: ImageSet, held: ImageSet) -> dict:
    """The file's own check on held-out pictures (see the module's doc)."""
    kept_images, held_images = _first(kept.images, CHECK_PICTURES), _first(held.images, CHECK_PICTURES)
    kept_features, _ = extractor(kept_images)
    held_features, _ = extractor(held_images)
    blurred_features, _ = extractor(blurred(held_images))
    check = {
        "floor_fid": scores.fid(held_features, kept_features),
        "blurred_fid": scores.fid(blurred_features, kept_features),
        "pictures": [len(kept_images), len(held_images)],
        "about": (f"FID of {len(held_images)} held-out pictures (floor_fid) and of the same pictures blurred "
                  f"({BLUR_FACTOR}x down and up, blurred_fid) against {len(kept_images)} training pictures"),
    }
    if kept.labels is not None and held.labels is not None:
        kept_labels = _first(kept.labels, CHECK_PICTURES).numpy()
        held_labels = _first(held.labels, CHECK_PICTURES).numpy()
        check["knn_accuracy"] = knn_accuracy(kept_features, kept_labels, held_features, held_labels)
        check["about"] += f"; knn_accuracy: held-out pictures whose {KNN} nearest training pictures name their class"
    return check


def describe_check(check: dict) -> str:
    """One line for the terminal."""
    text = (f"quality check: floor FID {check['floor_fid']:.2f} (held-out vs training pictures), "
            f"blurred FID {check['blurred_fid']:.2f}")
    if check["floor_fid"] > 0:
        text += f" ({check['blurred_fid'] / check['floor_fid']:.0f}x the floor)"
    if "knn_accuracy" in check:
        text += f", {KNN}-NN class accuracy {check['knn_accuracy']:.1%}"
    return text


def train_contrastive_evaluator(train: ImageSet, dataset: str, out: Path, *, command: str, steps: int = STEPS,
                                batch_size: int = BATCH_SIZE, seed: int = 0, quiet: bool = False,
                                picture_options: dict | None = None, groups: list[str] | None = None,
                                groups_rule: str = "picture") -> tuple[Path, dict]:
    """Train on the kept 80% of ``train``, check on the held-out 20%, save to ``out``; return (out, meta).
    ``groups`` (a key per picture, by ``groups_rule``): whole groups are held out."""
    kept, held = split_holdout(train, groups)
    if not quiet:
        print(f"training the contrastive extractor on {len(kept)} of the {len(train)} pictures of {dataset} "
              f"({steps} steps of {min(batch_size, len(kept))}); {len(held)} held out "
              f"({HOLDOUT_FRACTION:.0%}, torch seed {HOLDOUT_SEED}) for its check and for `gankit eval`'s floor")
    start = time.perf_counter()
    model, losses = train_contrastive(kept, steps=steps, batch_size=batch_size, seed=seed, quiet=quiet)
    seconds = time.perf_counter() - start
    options = picture_options or {}
    meta = {
        "dataset": train.name,
        "train": f"{len(kept)} of the {len(train)} training pictures of {dataset} (the rest are held out)",
        "holdout": {**holdout_meta(len(train), groups_rule, groups),
                    **({"fit": str((picture_options or {}).get("fit", "crop"))} if groups is not None else {})},
        "steps": int(steps),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "loss_first_last": [float(losses[0]), float(losses[-1])],
        "train_seconds": round(seconds, 1),
        "image_size": int(options.get("image_size") or train.image_shape[-1]),
        "fit": str(options.get("fit", "crop")),
        "alpha": str(options.get("alpha", "white")),
        "gankit_version": gankit.__version__,
        "torch_version": str(torch.__version__),
        "command": command,
    }
    extractor = ContrastiveExtractor(model, meta)
    meta["quality"] = quality_check(extractor, kept, held)
    meta["sensitivity"] = check_extractor(extractor, kept.images, held.images, held.labels,
                                          reference_about="pictures it trained on",
                                          held_about="pictures held out from its training")
    save_contrastive(model, out, meta)
    meta = ContrastiveExtractor.load(out).meta  # the meta exactly as the file holds it
    print(describe_sensitivity(meta["sensitivity"]))
    print(f"{describe_check(meta['quality'])}; wrote {out} ({seconds:.0f} s of training)")
    return out, meta

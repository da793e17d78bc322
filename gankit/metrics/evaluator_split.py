"""The evaluator's held-out split: a fixed, seeded 80/20 split of a set of pictures.

``gankit train-evaluator`` trains on the 80% and checks itself on the 20%. The contrastive
extractor records the split in its file, and ``gankit eval`` then takes its real-data floor from
the same 20%: pictures the extractor never saw, as it never saw the generated ones.
"""

from __future__ import annotations

import dataclasses

import torch

from gankit.data import ImageSet

# The seed is fixed, not the training seed, so the held-out pictures are the same whatever seed
# trains the evaluator, and `gankit eval` can find them again from the file's meta.
HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 0


def holdout_indices(n: int, fraction: float = HOLDOUT_FRACTION, seed: int = HOLDOUT_SEED
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept indices, held-out indices) of n pictures, each sorted; at least one is held out."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_held = max(1, round(n * fraction))
    return order[n_held:].sort().values, order[:n_held].sort().values


def split_holdout(ds: ImageSet) -> tuple[ImageSet, ImageSet]:
    """``ds`` split into (80% kept, 20% held out) by ``holdout_indices``; labels follow when present."""
    kept, held = holdout_indices(len(ds))

    def take(index: torch.Tensor) -> ImageSet:
        labels = None if ds.labels is None else ds.labels[index]
        return dataclasses.replace(ds, images=ds.images[index], labels=labels, mmap_file=None)

    return take(kept), take(held)


def holdout_meta(n: int) -> dict:
    """What an evaluator file records of its split, for `gankit eval` to find it again."""
    return {"fraction": HOLDOUT_FRACTION, "seed": HOLDOUT_SEED, "pictures": int(n)}

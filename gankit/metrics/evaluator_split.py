"""The evaluator's held-out split: a fixed, seeded 80/20 split of a set of pictures.

With groups (``gankit.data.name_groups``: the animation frames of one sprite), whole groups are
held out, so that no group has pictures on both sides.

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


def holdout_indices(n: int, fraction: float = HOLDOUT_FRACTION, seed: int = HOLDOUT_SEED,
                    groups: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept indices, held-out indices) of n pictures, each sorted; at least one is held out.

    ``groups`` (a key per picture): groups in a seeded random order are held out whole until
    ``fraction`` of the pictures are; without, every picture is its own group (the order, and so
    the split, is then the one older evaluator files were made with).
    """
    if groups is None:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        n_held = max(1, round(n * fraction))
        return order[n_held:].sort().values, order[:n_held].sort().values
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group keys for {n} pictures")
    keys = sorted(set(groups))
    if len(keys) < 2:
        raise ValueError("a group-wise held-out split needs at least 2 groups")
    members: dict[str, list[int]] = {k: [] for k in keys}
    for i, key in enumerate(groups):
        members[key].append(i)
    held: list[int] = []
    for g in torch.randperm(len(keys), generator=torch.Generator().manual_seed(seed)).tolist():
        if held and len(held) >= n * fraction:
            break
        held += members[keys[g]]
    held_set = set(held)
    kept = [i for i in range(n) if i not in held_set]
    if not kept:  # the groups drawn before reaching the share held every picture
        raise ValueError("the groups are too large for a held-out split: nothing would be left to train on")
    return torch.tensor(kept), torch.tensor(sorted(held))


def split_holdout(ds: ImageSet, groups: list[str] | None = None) -> tuple[ImageSet, ImageSet]:
    """``ds`` split into (80% kept, 20% held out) by ``holdout_indices``; labels follow when present."""
    kept, held = holdout_indices(len(ds), groups=groups)

    def take(index: torch.Tensor) -> ImageSet:
        labels = None if ds.labels is None else ds.labels[index]
        return dataclasses.replace(ds, images=ds.images[index], labels=labels, mmap_file=None)

    return take(kept), take(held)


def holdout_meta(n: int, groups_rule: str = "picture", groups: list[str] | None = None) -> dict:
    """What an evaluator file records of its split, for `gankit eval` to find it again."""
    meta = {"fraction": HOLDOUT_FRACTION, "seed": HOLDOUT_SEED, "pictures": int(n)}
    if groups is not None:
        meta.update(groups_rule=groups_rule, groups=len(set(groups)))
    return meta

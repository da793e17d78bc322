"""The sensitivity check of a feature extractor: can its FID tell a blob from a picture?

An FID is only as good as the features under it. A classifier that learnt colour and texture
scores a picture whose objects are cut up and shuffled almost like the real thing, and then it
cannot choose between a generator that draws objects and one that draws coloured blobs. So every
extractor is checked on real pictures it never trained on: their FID against the reference is the
floor, then the same pictures degraded (``degradations.py``), each family at a few strengths,
weakest first, and the check passes when

- within each family, FID rises with the strength (an instrument that ranks a stronger blur as
  better than a weaker one cannot rank generators either), and
- the structural degradations that destroy every object but keep colour and texture (the 2x2 tile
  shuffle and the average of two pictures) score at least ``STRUCTURE_BAR`` = 30 times the floor.

Why 30x: the runs one compares when choosing a recipe sit at 2 to 30 times the floor (on the
tuxpaint stamps `dcgan`'s 5-minute samples, blobs in which no stamp can be named, sat at 3.3x its
classifier's floor). An extractor that puts pictures with no object left in them under 30x its
floor places a generator of blobs among the good ones. The bar also falls between the two
extractors that were measured before it was set: tuxpaint's 8-epoch classifier (2x2 shuffle at
10x its floor, a generator of blobs at 3.3x: it could not choose) and a classifier of another
colour set that could (290x); 30x is three times the first and a tenth of the second.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from gankit.data.transforms import convert_channels
from gankit.metrics import degradations as deg
from gankit.metrics import scores

STRUCTURE_BAR = 30.0
# The degradations the bar applies to: (family, strength).
BARRED = (("shuffle", 2), ("blend", 0.5))
VERSION = 1
SEED = 0
# Clusters of the extractor's own features that stand in for classes where there are no labels.
CLUSTERS = 8
# Pictures per side: enough for a stable FID of 128-d features, few enough that the check takes
# seconds to a minute after minutes of training.
CHECK_PICTURES = 5000


def _words(family: str, strength: float) -> str:
    s = f"{strength:g}"
    return {
        "shuffle": f"{s}x{s} tiles shuffled",
        "blend": "two pictures averaged" if strength == 0.5 else f"blended {s} with another",
        "blur": f"Gaussian blur, radius {s}",
        "noise": f"noise, std {s}/255",
        "checkerboard": f"2-px checkerboard, +-{s}/255",
        "quantise": f"{s} levels per channel",
        "variety": f"{strength:.0%} of the {'{by}'}",
        "blob": f"blob: {s}x{s} and back",
    }[family]


# Family -> (what it tests, strengths weakest first, the degradation). Variety is made apart.
FAMILIES: dict[str, tuple[str, tuple[float, ...], Callable | None]] = {
    "shuffle": ("structure", (2, 4), lambda x, s, g: deg.tile_shuffle(x, int(s), g)),
    "blend": ("structure", (0.25, 0.5), lambda x, s, g: deg.blend_pairs(x, s, g)),
    "blur": ("texture", (0.5, 1, 2), lambda x, s, g: deg.gaussian_blur(x, s)),
    "noise": ("texture", (8, 16, 32), lambda x, s, g: deg.additive_noise(x, s, g)),
    "checkerboard": ("texture", (8, 16, 32), lambda x, s, g: deg.checkerboard(x, s)),
    # fewer levels is the stronger degradation
    "quantise": ("colour", (16, 8, 4), lambda x, s, g: deg.quantise(x, int(s))),
    "variety": ("variety", (0.5, 0.25), None),
    "blob": ("blob baseline", (deg.BLOB_SIDE,), lambda x, s, g: deg.blob(x, int(s))),
}


def kmeans(features: np.ndarray, k: int, seed: int = SEED, iterations: int = 25) -> np.ndarray:
    """Cluster labels [N] of features [N, D] by Lloyd's k-means on standardised features, started
    from k pictures chosen with ``seed`` (numpy only: gankit does not depend on scikit-learn)."""
    x = (features - features.mean(0)) / features.std(0).clip(1e-12)
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), size=min(k, len(x)), replace=False)]
    labels = np.zeros(len(x), dtype=np.int64)
    for _ in range(iterations):
        distances = (x * x).sum(1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None, :]
        labels = distances.argmin(1)
        for j in range(len(centres)):
            if (labels == j).any():
                centres[j] = x[labels == j].mean(0)
    return labels


def _variety_subsets(groups: np.ndarray, shares: tuple[float, ...]) -> list[tuple[float, np.ndarray]]:
    """(share, indices of the pictures in the first share of the groups, in a seeded order) for each
    share; a share that keeps as many groups as the one before it is left out (two groups can
    only be halved)."""
    names = np.unique(groups)
    order = np.random.default_rng(SEED).permutation(names)
    out, kept_before = [], len(names)
    for share in shares:
        kept = max(1, round(len(names) * share))
        if kept >= kept_before:
            continue
        kept_before = kept
        out.append((share, np.flatnonzero(np.isin(groups, order[:kept]))))
    return out


def _times(fid: float, floor: float) -> float:
    return float(fid / floor) if floor > 0 else float("inf")


def sensitivity_check(extract: Callable[[torch.Tensor], tuple], reference: np.ndarray, held: torch.Tensor,
                      held_labels: torch.Tensor | None = None, *, reference_about: str = "the reference",
                      held_about: str = "held-out pictures") -> dict:
    """The check (see the module's doc) of the extractor ``extract`` (uint8 pictures -> (features,
    ...)), with ``reference`` its features [M, D] of the reference pictures and ``held`` real
    pictures [N, C, H, W] it never trained on (``held_labels`` their classes, where known).

    Returns a JSON-ready dict: floor_fid, degradations (family, what, strength, fid, times_floor,
    weakest first in each family), passes, failures (why not, in words) and the protocol."""
    if held.shape[1] == 4:  # the extractors composite RGBA onto white; degrade what they see
        held = convert_channels(held, 3)
    held_features = extract(held)[0]
    floor = scores.fid(held_features, reference)
    rows = []
    for family, (_, strengths, degrade) in FAMILIES.items():
        if family == "variety":
            if held_labels is not None:
                groups, by = held_labels.numpy(), "classes"
            else:
                groups, by = kmeans(held_features, CLUSTERS), f"{CLUSTERS} clusters of its own features"
            for share, index in _variety_subsets(groups, strengths):
                if len(index) < 2:
                    continue
                fid = scores.fid(held_features[index], reference)
                rows.append({"family": family, "what": _words(family, share).format(by=by), "strength": share,
                             "fid": fid, "times_floor": _times(fid, floor), "pictures": int(len(index))})
            continue
        for strength in strengths:
            generator = torch.Generator().manual_seed(SEED)
            fid = scores.fid(extract(degrade(held, strength, generator))[0], reference)
            rows.append({"family": family, "what": _words(family, strength), "strength": strength,
                         "fid": fid, "times_floor": _times(fid, floor)})
    failures = judge(rows, floor)
    return {
        "version": VERSION,
        "floor_fid": floor,
        "degradations": rows,
        "passes": not failures,
        "failures": failures,
        "rule": (f"passes when each family's FID rises with its strength and the 2x2 tile shuffle and the "
                 f"average of two pictures score at least {STRUCTURE_BAR:g}x the floor"),
        "about": (f"FID of {len(held):,} {held_about} (the floor) and of the same pictures degraded, against "
                  f"{len(reference):,} {reference_about}; variety: the held-out pictures of part of the groups"),
        "pictures": [int(len(reference)), int(len(held))],
    }


def _spread_pick(n: int, limit: int) -> torch.Tensor:
    """Up to `limit` of n indices, spread over the set by a seeded choice, in order."""
    if n <= limit:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(SEED))[:limit].sort().values


def check_extractor(extract: Callable[[torch.Tensor], tuple], reference: torch.Tensor, held: torch.Tensor,
                    held_labels: torch.Tensor | None, *, reference_about: str, held_about: str,
                    limit: int = CHECK_PICTURES) -> dict:
    """``sensitivity_check`` on up to ``limit`` reference pictures and ``limit`` held-out ones, as
    `gankit train-evaluator` runs it on the pictures it trained on and those it held out."""
    ref_pick, held_pick = _spread_pick(len(reference), limit), _spread_pick(len(held), limit)
    reference_features = extract(reference[ref_pick])[0]
    return sensitivity_check(extract, reference_features, held[held_pick],
                             None if held_labels is None else held_labels[held_pick],
                             reference_about=reference_about, held_about=held_about)


def judge(rows: list[dict], floor: float) -> list[str]:
    """Why a check fails, in words (empty when it passes): FIDs not rising within a family, and
    structural degradations under the bar."""
    failures = []
    for family in FAMILIES:
        mine = [r for r in rows if r["family"] == family]
        for weaker, stronger in zip(mine, mine[1:]):
            if not stronger["fid"] > weaker["fid"]:
                failures.append(f"{family}: FID {stronger['fid']:.3g} ({stronger['what']}) is not above "
                                f"{weaker['fid']:.3g} ({weaker['what']})")
    for family, strength in BARRED:
        for r in rows:
            if r["family"] == family and r["strength"] == strength and not r["fid"] >= STRUCTURE_BAR * floor:
                failures.append(f"{r['what']}: {r['times_floor']:.3g}x the floor, under the {STRUCTURE_BAR:g}x bar")
    return failures


def summarise_check(check: dict, source: str | None = None) -> str:
    """The check in one line, as `gankit eval` prints it under the scores: the verdict, the barred
    degradations against the floor, and why it fails (the whole check is in eval.json)."""
    where = f" of {source}" if source else ""
    barred = [r for r in check["degradations"] if (r["family"], r["strength"]) in BARRED]
    shown = ", ".join(f"{r['what']} {r['times_floor']:.3g}x" for r in barred)
    line = (f"extractor check{where}: {'passes' if check['passes'] else 'FAILS'} ({shown} the floor FID "
            f"{check['floor_fid']:.3g}")
    if check["failures"]:
        return line + "; " + "; ".join(check["failures"]) + "): do not choose between runs with it"
    return line + "; every family rises with its strength; all of it in eval.json)"


def describe_check(check: dict, source: str | None = None) -> str:
    """The check as lines for the terminal: the verdict, the floor, then a line per kind."""
    verdict = "passes" if check["passes"] else "FAILS"
    where = f" (stored in {source})" if source else ""
    lines = [f"extractor check{where}: {verdict}; {check['rule']}",
             f"  floor FID {check['floor_fid']:.3g}: {check['about']}"]
    kinds: dict[str, list[str]] = {}
    for r in check["degradations"]:
        kind = FAMILIES.get(r["family"], (r["family"],))[0]
        kinds.setdefault(kind, []).append(f"{r['what']} {r['fid']:.3g} ({r['times_floor']:.3g}x)")
    for kind, items in kinds.items():
        lines.append(f"  {kind + ':':<15}" + "; ".join(items))
    lines += [f"  why it fails: {reason}" for reason in check["failures"]]
    return "\n".join(lines)

"""Do the classifier and the contrastive extractor rank runs alike? FID per run under each, and the
Spearman rank correlation of the two orderings.

    python benchmarks/extractor_agreement.py runs/a runs/b runs/c --dataset ~/pictures/cats \\
        --classifier cats-classifier.pt --contrastive cats-contrastive.pt --out agreement.json

Each run's final generator (its newest intact checkpoint, the EMA copy where kept) draws the same
number of images once, with a fixed seed; both extractors score those same images against the
same dataset, read as the run read it, with `gankit eval`'s code (gankit.metrics.evaluate.Evaluator),
so each FID here is what `gankit eval RUN --evaluator FILE -n N --metrics fid` prints. A correlation
near 1 says the self-supervised extractor orders models as the classifier does on labelled
pictures: evidence that it can be trusted on pictures without labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from gankit.api import run_data_options
from gankit.errors import UserError
from gankit.metrics.evaluate import Evaluator
from gankit.sampling import load_generator


def ranks(values: list[float]) -> np.ndarray:
    """Ranks 1..n of values, ties sharing the mean of their ranks (as Spearman's rho needs)."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    out = np.empty(len(x))
    out[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        out[tied] = out[tied].mean()
    return out


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rank correlation: the Pearson correlation of the ranks. None where it is not
    defined (fewer than 2 runs, or one side ranks every run alike)."""
    if len(a) != len(b) or len(a) < 2:
        return None
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    return None if denominator == 0 else float((ra * rb).sum() / denominator)


def score_run(run_dir: Path, dataset: str, evaluators: dict[str, str], n: int, seed: int, device: str) -> dict:
    """FID of one run's final generator under each evaluator file, on the same n images."""
    tg = load_generator(run_dir, device=device)
    images = tg.images(tg.latent(n, torch.Generator().manual_seed(seed)))
    row = {"run": str(run_dir), "step": tg.step, "checkpoint": str(tg.checkpoint), "ema": tg.uses_ema}
    for name, path in evaluators.items():
        scorer = Evaluator(dataset, metrics=("fid",), n_floor=n, evaluator=path,
                           device="cpu" if device == "auto" else device, **run_data_options(tg.cfg))
        result = scorer.score(images)
        row[name] = {"fid": result.metrics["fid"], "floor_fid": result.floor.get("fid"),
                     "extractor": result.protocol["extractor"], "reference": result.protocol["reference"],
                     "floor": result.protocol.get("floor")}
    return row


def table(rows: list[dict], names: list[str], rho: float | None) -> str:
    width = max(len("run"), *(len(r["run"]) for r in rows))
    lines = [f"{'run':<{width}}  {'step':>7}" + "".join(f"  {name + ' FID':>16}  {'floor':>7}" for name in names)]
    for r in rows:
        lines.append(f"{r['run']:<{width}}  {r['step']:>7}"
                     + "".join(f"  {r[name]['fid']:>16.2f}  {r[name]['floor_fid']:>7.2f}" for name in names))
    lines.append("Spearman rank correlation of the two orderings: "
                 + ("undefined (needs 2 runs or more that the FIDs tell apart)" if rho is None else f"{rho:.3f}"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (their newest checkpoint)")
    parser.add_argument("--dataset", required=True, metavar="FOLDER", help="the reference pictures")
    parser.add_argument("--classifier", required=True, metavar="FILE", help="`gankit train-evaluator` classifier")
    parser.add_argument("--contrastive", required=True, metavar="FILE",
                        help="`gankit train-evaluator --self-supervised` file")
    parser.add_argument("-n", type=int, default=10_000, help="images per run, the same for both (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images drawn (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--out", metavar="JSON", help="also write the results here")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error(f"-n must be at least 2, got {args.n}")
    evaluators = {"classifier": args.classifier, "contrastive": args.contrastive}
    try:
        rows = [score_run(Path(run), args.dataset, evaluators, args.n, args.seed, args.device) for run in args.runs]
    except UserError as exc:
        print(f"extractor_agreement: error: {exc}", file=sys.stderr)
        return 2
    rho = spearman([r["classifier"]["fid"] for r in rows], [r["contrastive"]["fid"] for r in rows])
    print(table(rows, list(evaluators), rho))
    if args.out:
        report = {"dataset": args.dataset, "n": args.n, "seed": args.seed, "evaluators": evaluators,
                  "runs": rows, "spearman": rho}
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

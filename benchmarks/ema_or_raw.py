"""Does the EMA of G's weights help? A checkpoint's FID twice, on the same latents and extractor:
from the EMA of G's weights (what `gankit sample` and `gankit eval` draw from) and from G's own.

    python benchmarks/ema_or_raw.py runs/a/checkpoints/ckpt_00000878.pt runs/b \\
        --evaluator runs/checks64/openclipart-64-classifier.pt -n 5000 --json ema_or_raw.json

Training does not read the EMA, so a run with `--ema-half-life 0` trains exactly as one with it;
this script shows what turning it off would have given at any checkpoint, without training again.
Each target is a run directory (its newest checkpoint) or a checkpoint file; its run's data is the
reference. Prints a table (checkpoint, step, images seen, FID and coverage both ways) and writes
every number to --json. `--standing-stats` also scores the EMA with its BatchNorm statistics
recomputed for its own averaged weights (BigGAN's "standing statistics": the EMA otherwise copies
G's running statistics, which belong to G's weights). `--grids DIR` also draws 64 samples (seed 0)
each way, DIR/NAME-STEP-ema.png and DIR/NAME-STEP-raw.png, NAME being the run's folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from gankit.api import evaluate
from gankit.run import checkpoint
from gankit.sampling import TrainedGenerator, load_generator


def standing_statistics(tg: TrainedGenerator, batches: int = 32, batch: int = 64) -> None:
    """Recompute tg's BatchNorm running statistics as the plain average over `batches` batches of
    fresh latents of its own kind (and labels, for a class-conditional G), in training mode."""
    norms = [m for m in tg.g.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    rng = torch.Generator().manual_seed(123)
    tg.g.train()
    with torch.no_grad():
        for _ in range(batches):
            z, y = tg.latent(batch, generator=rng).to(tg.device), tg.labels(batch, generator=rng)
            tg.g(z, y.to(tg.device)) if y is not None else tg.g(z)
    tg.g.eval()


def both_ways(target: Path, evaluator: Path, n: int, seed: int, grids: Path | None = None,
              standing: bool = False) -> dict:
    """FID and coverage of `target`'s EMA and of its G's own weights (and their grids into `grids`)."""
    tg = load_generator(target, device="cpu")
    if not tg.uses_ema:
        raise SystemExit(f"{target}: its run kept no EMA of G (--ema-half-life 0); nothing to compare")
    state = checkpoint.load(tg.checkpoint)
    row = {"checkpoint": str(tg.checkpoint), "step": tg.step,
           "images_seen": state["progress"].get("images_seen")}
    ways = [("ema", state["generator_ema"]), ("raw", state["generator"])]
    for name, weights in ways + ([("ema_standing", state["generator_ema"])] if standing else []):
        tg.g.load_state_dict(weights)
        if name == "ema_standing":
            standing_statistics(tg)
        scores = evaluate(tg, metrics="fid,coverage", n=n, evaluator=evaluator, seed=seed, floor=False)
        row[name] = {"fid": scores["fid"], "coverage": scores["coverage"]}
        if grids is not None:
            grids.mkdir(parents=True, exist_ok=True)
            run_name = tg.checkpoint.parent.parent.name
            tg.grid(64, seed=0).save(grids / f"{run_name}-{tg.step}-{name}.png")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="+", type=Path, help="run directories or checkpoint files")
    ap.add_argument("--evaluator", type=Path, required=True, help="the extractor file that scores them")
    ap.add_argument("-n", type=int, default=5000, help="generated images per score (default 5000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the latents, the same both ways (default 0)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--grids", type=Path, help="also draw 64 samples each way into this folder")
    ap.add_argument("--standing-stats", action="store_true",
                    help="also score the EMA with BatchNorm statistics recomputed for its weights")
    args = ap.parse_args()
    rows = [both_ways(t, args.evaluator, args.n, args.seed, args.grids, args.standing_stats) for t in args.targets]
    print("| checkpoint | step | images | FID EMA | FID raw | coverage EMA | coverage raw |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['checkpoint']} | {r['step']} | {r['images_seen']:,} | {r['ema']['fid']:,.0f} | "
              f"{r['raw']['fid']:,.0f} | {r['ema']['coverage']:.3f} | {r['raw']['coverage']:.3f} |")
        if "ema_standing" in r:
            print(f"|   EMA with standing statistics | | | {r['ema_standing']['fid']:,.0f} | | "
                  f"{r['ema_standing']['coverage']:.3f} | |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"evaluator": str(args.evaluator), "n": args.n, "seed": args.seed,
                                         "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

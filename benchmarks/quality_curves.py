"""Several runs' quality over time in one picture: FID against minutes of training and against real
images seen, from the evaluations each run made while it trained (metrics.jsonl).

    gankit train --dataset FOLDER --image-size 32 --preset dcgan --max-minutes 5 \\
        --eval-at-minutes 1,2,5 --eval-evaluator FOLDER-classifier.pt --out runs/curves/dcgan
    gankit train ... --preset colour ... --out runs/curves/colour
    python benchmarks/quality_curves.py runs/curves/dcgan runs/curves/colour --out curves.png

writes curves.png (two panels, one line per run) and curves.json (every point: run, step, images
seen, minutes, FID, KID, coverage, the real-data floor, and the extractor that scored it). Minutes are training
time: evaluation is kept off the clock (`--eval-at-minutes`), so the points of two runs at "2
minutes" had the same time to train. Runs scored by different extractors are refused: their FIDs
are on different scales.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

from gankit.errors import UserError
from gankit.run.pictures import line_plot
from gankit.run.rundir import RunDir, eval_records

KEYS = ("step", "images_seen", "time_s", "mark_minutes", "fid", "kid", "coverage", "floor_fid", "eval_s", "extractor")


def curve(run_dir: Path) -> dict:
    """One run's evaluation points and what scored them."""
    rundir = RunDir(run_dir)
    if not rundir.is_run():
        raise UserError(f"{run_dir}: not a run directory (no config.json)")
    points = [{k: r[k] for k in KEYS if k in r} for r in eval_records(rundir.read_metrics())]
    if not points:
        raise UserError(f"{run_dir}: no evaluations in metrics.jsonl; train with --eval-at-minutes 1,2,5 "
                        "(or --eval-every N)")
    extractors = {p.get("extractor") for p in points}
    return {"run": str(run_dir), "name": run_dir.name, "preset": rundir.read_info().get("preset"),
            "extractor": extractors.pop() if len(extractors) == 1 else sorted(map(str, extractors)),
            "points": points}


def draw(curves: list[dict], path: Path) -> None:
    """Two panels stacked: FID against minutes, FID against images seen."""
    by_minutes = {c["name"]: ([p.get("time_s", 0) / 60 for p in c["points"]], [p.get("fid") for p in c["points"]])
                  for c in curves}
    by_images = {c["name"]: ([p.get("images_seen") for p in c["points"]], [p.get("fid") for p in c["points"]])
                 for c in curves}
    top = line_plot(by_minutes, None, title="FID against training time", xlabel="minutes of training",
                    size=(900, 320))
    bottom = line_plot(by_images, None, title="FID against images seen", xlabel="real images seen",
                       size=(900, 320))
    sheet = Image.new("RGB", (900, 640), "white")
    sheet.paste(top, (0, 0))
    sheet.paste(bottom, (0, 320))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories that evaluated while training")
    parser.add_argument("--out", type=Path, default=Path("curves.png"), help="the PNG; the JSON goes beside it")
    args = parser.parse_args(argv)
    try:
        curves = [curve(run) for run in args.runs]
        extractors = {json.dumps(c["extractor"]) for c in curves}
        if len(extractors) > 1:
            raise UserError("the runs were scored by different extractors (" + "; ".join(sorted(extractors))
                            + "): their FIDs are on different scales; evaluate them with one --eval-evaluator")
    except UserError as exc:
        print(f"quality_curves: {exc}", file=sys.stderr)
        return 2
    draw(curves, args.out)
    table = args.out.with_suffix(".json")
    table.write_text(json.dumps({"curves": curves}, indent=2) + "\n", encoding="utf-8")
    for c in curves:
        last = c["points"][-1]
        print(f"{c['name']:<24} {len(c['points'])} points; last: {last.get('time_s', 0) / 60:.2f} min, "
              f"{last.get('images_seen', 0):,} images, FID {last.get('fid', float('nan')):.4g}")
    print(f"wrote {args.out} and {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

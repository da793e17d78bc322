"""Train every preset for the same wall-clock budget, score it, and keep a sample grid of each.

This is what produces the preset table and pictures in the README:

    python benchmarks/preset_gallery.py --minutes 4 --dataset fashion-mnist

Each preset runs in its own process with its seed settings (only the dataset and the time limit
are overridden); then 64 images are drawn from the final generator with `gankit sample`, and
`gankit eval` scores 10,000 samples against the test split with gankit's own classifier features,
beside the real-data floor (10,000 train images against the same test split). Results go to
OUT/results.json and a Markdown table is printed; grids go to --images.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from gankit.presets import PRESETS


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0, help="training time per preset")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated preset names")
    parser.add_argument("--out", default="runs/gallery", help="where the runs go")
    parser.add_argument("--images", default="docs/img", help="where the sample grids go")
    parser.add_argument("--eval-n", type=int, default=10_000, help="generated images scored per preset")
    args = parser.parse_args()

    out, images = Path(args.out), Path(args.images)
    images.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.presets.split(","):
        run_dir = out / name
        if not (run_dir / "config.json").exists():
            run([sys.executable, "-m", "gankit", "train", "-q", "--preset", name, "--dataset", args.dataset,
                 "--max-minutes", str(args.minutes), "--out", str(run_dir)])
        grid = images / f"{name}.png"
        run([sys.executable, "-m", "gankit", "sample", str(run_dir), "-n", "64", "--nrow", "8", "--scale", "2", "--out", str(grid),
             "-q"])
        run([sys.executable, "-m", "gankit", "eval", str(run_dir), "-n", str(args.eval_n)])
        scores = json.loads((run_dir / "eval.json").read_text())
        info = json.loads((run_dir / "config.json").read_text())
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        last = records[-1]
        results.append({
            "preset": name, "arch": info["config"]["arch"], "loss": info["config"]["loss"],
            "batch_size": info["config"]["batch_size"], "dataset": info["dataset"]["name"],
            "steps": last["step"], "epochs": last["epoch"], "images_seen": last["images_seen"],
            "train_seconds": last["time_s"],
            "images_per_s": statistics.median(r["images_per_s"] for r in records),
            "grid": str(grid),
            "metrics": scores["metrics"], "floor": scores["floor"], "protocol": scores["protocol"],
        })
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    (out / "results.json").write_text(json.dumps({"machine": machine, "minutes": args.minutes,
                                                  "results": results}, indent=2))
    print(f"\nmachine: {machine}\n")
    print("| preset | network | loss | batch | steps | epochs | images seen | train time | images/s | "
          "FID | KID | precision | recall | coverage | classes missing |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        m = r["metrics"]
        print(f"| `{r['preset']}` | {r['arch']} | {r['loss']} | {r['batch_size']} | {r['steps']:,} | "
              f"{r['epochs']:.1f} | {r['images_seen']:,} | {r['train_seconds'] / 60:.1f} min | "
              f"{r['images_per_s']:,.0f} | {_scores(m)} |")
    if results:
        f = results[0]["floor"]
        print(f"| real data (floor) | | | | | | | | | {_scores(f)} |")
        print(f"\nprotocol: {results[0]['protocol']}")


def _scores(m: dict) -> str:
    return (f"{m['fid']:.2f} | {m['kid']:.3g} | {m['precision']:.3f} | {m['recall']:.3f} | "
            f"{m['coverage']:.3f} | {m['classes_missing']}")


if __name__ == "__main__":
    main()

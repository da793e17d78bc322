"""FID after 5 and 20 minutes of training, for every preset, on Fashion-MNIST: the README's table.

    python benchmarks/quality_table.py                       # every preset, 5 and 20 min, seed 0
    python benchmarks/quality_table.py --presets fast --seeds 0,1,2

Each (preset, seed) is one run directory under --out, trained with the preset's own settings
(only the dataset, the seed and a time limit are overridden; --steps is lifted so that time is
the only limit). At each mark in --minutes the run stops (`--max-minutes`, a resumable
checkpoint), `gankit eval` scores 10,000 samples against the test split with gankit's classifier
features (FID, KID, coverage), the result is kept as eval_<minutes>min.json, and training resumes
to the next mark. Finished pieces are skipped on a rerun, so the table can be filled in several
sittings. Minutes are wall-clock minutes of the training process, sample grids and checkpoints
included, on whatever machine runs it: run nothing else meanwhile.

Prints a Markdown table (mean and spread over seeds) and writes OUT/quality.json.
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

NO_STEP_LIMIT = "100000000"


def sh(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def last_record(run_dir: Path) -> dict:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in records if "d_loss" in r][-1]


def train_to(run_dir: Path, preset: str, seed: int, dataset: str, minutes: float, done_minutes: float) -> None:
    """Train (or resume) until the run has had `minutes` of training in total."""
    budget = str(minutes - done_minutes)
    if not (run_dir / "config.json").exists():
        sh([sys.executable, "-m", "gankit", "train", "-q", "--preset", preset, "--dataset", dataset,
            "--seed", str(seed), "--steps", NO_STEP_LIMIT, "--max-minutes", budget, "--out", str(run_dir)])
    else:
        sh([sys.executable, "-m", "gankit", "train", "-q", "--resume", str(run_dir), "--max-minutes", budget])


def shareable_protocol(scores: dict) -> dict:
    """An eval result's protocol minus "scored", which names a checkpoint by its path on the
    measuring machine: the results files are published."""
    return {k: v for k, v in (scores.get("protocol") or {}).items() if k != "scored"}


def row(preset: str, seed: int, minutes: float, scores: dict) -> dict:
    return {"preset": preset, "seed": seed, "minutes": minutes, "metrics": scores["metrics"],
            "floor": scores.get("floor", {}), "protocol": shareable_protocol(scores),
            "images_seen": scores["train"]["images_seen"], "steps": scores["train"]["step"]}


def measure(run_dir: Path, preset: str, seed: int, dataset: str, marks: list[float], eval_n: int) -> list[dict]:
    rows, done = [], 0.0
    for minutes in marks:
        result_path = run_dir / f"eval_{minutes:g}min.json"
        if not result_path.exists():
            train_to(run_dir, preset, seed, dataset, minutes, done)
            sh([sys.executable, "-m", "gankit", "eval", str(run_dir), "-n", str(eval_n),
                "--metrics", "fid,kid,coverage", "--json", str(result_path)])
            scores = json.loads(result_path.read_text())
            scores["train"] = last_record(run_dir)
            result_path.write_text(json.dumps(scores, indent=2))
        rows.append(row(preset, seed, minutes, json.loads(result_path.read_text())))
        done = minutes
    return rows


def summarise(values: list[float]) -> str:
    """One value, or the mean ± the standard deviation over seeds; counts with thousands separators."""
    fmt = ",.0f" if all(float(v).is_integer() and abs(v) >= 1000 for v in values) else ".3g"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.fmean(values), fmt)} ± {format(statistics.stdev(values), fmt if fmt != '.3g' else '.2g')}"


def table(rows: list[dict], marks: list[float]) -> str:
    lines = ["| preset | minutes | seeds | images seen | FID | KID | coverage |", "|---|---|---|---|---|---|---|"]
    for preset in dict.fromkeys(r["preset"] for r in rows):
        for minutes in marks:
            group = [r for r in rows if r["preset"] == preset and r["minutes"] == minutes]
            if not group:
                continue
            lines.append(
                f"| `{preset}` | {minutes:g} | {len(group)} | "
                f"{summarise([r['images_seen'] for r in group])} | "
                f"{summarise([r['metrics']['fid'] for r in group])} | "
                f"{summarise([r['metrics']['kid'] for r in group])} | "
                f"{summarise([r['metrics']['coverage'] for r in group])} |")
    floor = next((r["floor"] for r in rows if r.get("floor")), None)
    if floor:
        lines.append(f"| real data (floor) | | | | {floor['fid']:.3g} | {floor['kid']:.3g} | {floor['coverage']:.3g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default=",".join(p for p in PRESETS if p != "default"))
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, each a run per preset")
    parser.add_argument("--minutes", default="5,20", help="marks at which the runs are scored")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--eval-n", type=int, default=10_000)
    parser.add_argument("--out", default="runs/quality")
    args = parser.parse_args()

    marks = sorted(float(m) for m in args.minutes.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    rows = []
    for preset in args.presets.split(","):
        for seed in seeds:
            rows += measure(out / f"{preset}-seed{seed}", preset, seed, args.dataset, marks, args.eval_n)
    # Runs of other invocations (e.g. more seeds of one preset) join the table too.
    for path in sorted(out.glob("*/eval_*min.json")):
        preset, seed = path.parent.name.rsplit("-seed", 1)
        minutes = float(path.stem.removeprefix("eval_").removesuffix("min"))
        if minutes in marks and not any(r["preset"] == preset and r["seed"] == int(seed) and r["minutes"] == minutes
                                        for r in rows):
            rows.append(row(preset, int(seed), minutes, json.loads(path.read_text())))
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "torch": torch.__version__, "threads": torch.get_num_threads()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print(f"\nmachine: {machine}\n")
    print(table(rows, marks))
    if rows:
        print(f"\nprotocol: {rows[0]['protocol']}")


if __name__ == "__main__":
    main()

"""Data efficiency: DiffAugment on vs off on the 5,000 embedded MNIST digits, the README's check.

    python benchmarks/augment_check.py                 # 8 minutes each, the default preset
    python benchmarks/augment_check.py --minutes 3

Two runs of the default preset on mnist-5k that differ only in `--augment`, each trained for the
same wall-clock minutes (`--max-minutes`), with 500 digits set aside (`--holdout 500`) so that D's
overfitting gap (share of training digits D calls real minus share of held-out digits) is logged.
Each run is scored with `gankit eval` (5,000 samples; mnist-5k has no test split, so the reference
is a fixed half of it). Finished runs are skipped on a rerun. Run nothing else meanwhile.
Prints a Markdown table and writes OUT/augment.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from quality_table import NO_STEP_LIMIT, sh, shareable_protocol  # beside this file

POLICIES = {"off": "none", "on": "color,translation,cutout"}


def measure(run_dir: Path, policy: str, minutes: float, seed: int, eval_n: int) -> dict:
    result_path = run_dir / "eval_augment.json"
    if not result_path.exists():
        if (run_dir / "config.json").exists():  # an interrupted earlier attempt: start it again
            raise SystemExit(f"{run_dir} holds an unfinished run; delete it and rerun")
        sh([sys.executable, "-m", "gankit", "train", "-q", "--preset", "default", "--dataset", "mnist-5k",
            "--holdout", "500", "--augment", policy, "--seed", str(seed), "--steps", NO_STEP_LIMIT,
            "--max-minutes", str(minutes), "--out", str(run_dir)])
        sh([sys.executable, "-m", "gankit", "eval", str(run_dir), "-n", str(eval_n),
            "--metrics", "fid,kid,coverage", "--json", str(result_path)])
    scores = json.loads(result_path.read_text())
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in lines if "d_loss" in r]
    last_third = train[len(train) * 2 // 3:]
    return {"augment": policy, "metrics": scores["metrics"], "protocol": shareable_protocol(scores),
            "images_seen": train[-1]["images_seen"], "epochs": train[-1]["epoch"],
            "gap_last_third": statistics.fmean(r["d_heldout_gap"] for r in last_third),
            "r_t_last_third": statistics.fmean(r["d_sign_real"] for r in last_third),
            "warnings": [r["message"] for r in lines if r.get("event") == "warning"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-n", type=int, default=5000)
    parser.add_argument("--out", default="runs/augment")
    args = parser.parse_args()
    out = Path(args.out)
    rows = [measure(out / f"augment-{name}", policy, args.minutes, args.seed, args.eval_n)
            for name, policy in POLICIES.items()]
    out.mkdir(parents=True, exist_ok=True)
    (out / "augment.json").write_text(json.dumps({"minutes": args.minutes, "rows": rows}, indent=2))
    print("\n| --augment | images seen (epochs) | FID | KID | coverage | D's held-out gap | r_t | warnings |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["metrics"]
        print(f"| {r['augment']} | {r['images_seen']:,} ({r['epochs']:.0f}) | {m['fid']:.3g} | {m['kid']:.3g} | "
              f"{m['coverage']:.3g} | {r['gap_last_third']:.3f} | {r['r_t_last_third']:.2f} | {len(r['warnings'])} |")
    print(f"\nprotocol: {rows[0]['protocol']}")


if __name__ == "__main__":
    main()

"""How long `gankit eval` takes on 5,000 and 10,000 images, for one or several gankit source trees
side by side (before and after a change), in one sitting on one machine.

    python benchmarks/eval_speed.py --trees OLD_CHECKOUT,NEW_CHECKOUT --out eval_speed.json

Each timing is the wall clock of a whole `python -m gankit eval IMAGES.npz --dataset DATA -n N
--metrics M` process, as a user waits for it, with the reference features already in that tree's
cache (one untimed call first; each tree gets its own cache folder), median of --repeats calls.
The images are real training pictures of DATA with noise added (a stand-in for a generator's),
so every metric has work to do. Run it on a quiet machine: other work on the cores moves these
times, not the FIDs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

METRIC_SETS = {"default": "fid,kid,pr,coverage,classes", "fid": "fid", "fid+coverage": "fid,coverage"}


def stand_in_images(dataset: str, n: int, path: Path) -> None:
    """n training pictures of `dataset` with Gaussian noise of 20 grey levels, as an .npz."""
    from gankit.data import open_dataset

    data = open_dataset(dataset)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:n]
    images = data.images[pick].to(torch.float32)
    noisy = (images + 20 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 255)
    np.savez(path, images=noisy.round().to(torch.uint8).permute(0, 2, 3, 1).numpy())


def timed_eval(tree: Path, cache: Path, images: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "GANKIT_CACHE": str(cache)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gankit", "eval", str(images), *args], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"gankit eval failed in {tree}:\n{done.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve().parent.parent
    parser.add_argument("--trees", default=str(here), help="comma-separated gankit checkouts (default: this one)")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--evaluator", default=None, help="an extractor file, passed as --evaluator")
    parser.add_argument("--sizes", default="5000,10000")
    parser.add_argument("--metrics", default=",".join(METRIC_SETS), help=f"of {', '.join(METRIC_SETS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("eval_speed.json"))
    args = parser.parse_args(argv)
    trees = [Path(t).expanduser().resolve() for t in args.trees.split(",") if t.strip()]
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="eval-speed-"))
    images = work / "images.npz"
    stand_in_images(args.dataset, max(sizes), images)
    rows = []
    for t, tree in enumerate(trees):
        cache = work / f"cache-{t}"
        for size in sizes:
            for name in args.metrics.split(","):
                flags = ["--dataset", args.dataset, "-n", str(size), "--metrics", METRIC_SETS[name]]
                flags += ["--evaluator", args.evaluator] if args.evaluator else []
                timed_eval(tree, cache, images, flags)  # fills the cache: reference features, once
                times = [timed_eval(tree, cache, images, flags) for _ in range(args.repeats)]
                rows.append({"tree": str(tree), "n": size, "metrics": name, "seconds": round(statistics.median(times), 2),
                             "all_seconds": [round(x, 2) for x in times]})
                print(f"{tree.name:<24} n={size:<6} {name:<14} {rows[-1]['seconds']:7.2f} s")
    machine = {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "python": platform.python_version(), "torch": torch.__version__}
    args.out.write_text(json.dumps({"machine": machine, "dataset": args.dataset, "rows": rows}, indent=2) + "\n",
                        encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

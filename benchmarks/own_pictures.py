"""A real folder of pictures through gankit: first decode, cached load, training by data placement.

Decode once, load from the cache, train from the device, host memory or the memory-mapped file.

On Debian's openclipart-png (8,121 clip-art PNGs in 22 category folders: every mode, size and
aspect, much transparency; installed with apt-get when missing and possible), at each size:

- the first decode (cache cleared) vs the cached load a later run pays, in turns, in fresh
  processes, with each process's peak memory (its decoding workers' too);
- pictures kept, skipped by reason, upscaled;
- a grid of 64 prepared pictures (transparent clip art must come out on white);
- training speed (`gankit train --preset fast`, images/s from metrics.jsonl after the first log
  line) with --data-placement device, host and mmap, in turns, as ratios to device.

    python benchmarks/own_pictures.py --out benchmarks/results/own_pictures.json

Prints a table; writes the JSON and the grids. Takes about 15 minutes on a 2-core CPU. Run it on
an idle machine: the timings are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = "/usr/share/openclipart/png"
APT_PACKAGE = {"/usr/share/openclipart/png": "openclipart-png", "/usr/share/tuxpaint/stamps": "tuxpaint-stamps-default"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=DEFAULT_SOURCE, help="a folder or ZIP of pictures (default: openclipart-png)")
    ap.add_argument("--sizes", default="32,64", help="comma-separated sides in pixels (default 32,64)")
    ap.add_argument("--rounds", type=int, default=3, help="turns of each contender (default 3)")
    ap.add_argument("--train-steps", type=int, default=120, help="steps per timed training run (default 120)")
    ap.add_argument("--placements", default="device,host,mmap", help="--data-placement values to time")
    ap.add_argument("--train-size", type=int, default=32, help="the size trained on for the placement timing")
    ap.add_argument("--grid-dir", default=str(REPO / "docs" / "img"), help="where the grids of prepared pictures go")
    ap.add_argument("--out", default=None, help="write the results here as JSON")
    ap.add_argument("--survey-only", action="store_true",
                    help="only describe the pictures (modes, transparency, sizes; fast) and add that to --out")
    ap.add_argument("--child", choices=("prepare",), help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_prepare(args.source, args.size)
    source = ensure_source(args.source)
    if args.survey_only:
        results = json.loads(Path(args.out).read_text()) if args.out and Path(args.out).is_file() else {}
        results["survey"] = survey(source)
        print(json.dumps(results["survey"], indent=1))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
        return
    cache = Path(tempfile.mkdtemp(prefix="gankit-bench-cache-"))
    env = {**os.environ, "GANKIT_CACHE": str(cache)}
    results = {"machine": machine(), "source": source, "rounds": args.rounds, "survey": survey(source), "sizes": {}}
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            results["sizes"][str(size)] = prepare_timings(source, size, args.rounds, env)
            write_grid(source, size, env, Path(args.grid_dir))
        results["training"] = training_speed(source, args.train_size, args.placements.split(","), args.rounds,
                                             args.train_steps, env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print_table(results)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.out}")


def ensure_source(source: str) -> str:
    if Path(source).exists():
        return source
    package = APT_PACKAGE.get(source)
    if package and shutil.which("apt-get"):
        print(f"{source} is missing: apt-get install -y {package}")
        subprocess.run(["apt-get", "install", "-y", "-q", package], check=False)
    if not Path(source).exists():
        sys.exit(f"{source}: not found; install Debian's {package or 'package'} or pass --source FOLDER")
    return source


def survey(source: str) -> dict:
    """What the pictures are, from their headers: modes, how many have transparency, how many are
    square, the smallest and largest side, and the largest pictures in megapixels."""
    from collections import Counter

    from PIL import Image

    sys.path.insert(0, str(REPO))
    from gankit.data.listing import list_pictures

    pictures = list_pictures(source)
    modes, transparent, square, sides, pixels = Counter(), 0, 0, [], []
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # headers of the huge ones too
    try:
        for name in pictures.names:
            with Image.open(pictures.location(name)) as img:  # the header only: nothing is decoded
                w, h = img.size
                modes[img.mode] += 1
                transparent += img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
                square += w == h
                sides += [w, h]
                pixels.append(w * h)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return {"pictures": len(pictures.names), "modes": dict(modes.most_common()), "transparent": transparent,
            "square": square, "smallest_side": min(sides), "largest_side": max(sides),
            "largest_megapixels": [round(p / 1e6, 1) for p in sorted(pixels)[-20:]]}


def child_prepare(source: str, size: int) -> None:
    """In a fresh process: prepare (or reuse) and touch every pixel; print seconds (after the imports,
    which every gankit command pays alike) and peak memory."""
    sys.path.insert(0, str(REPO))
    import numpy as np

    import gankit.data.registry  # noqa: F401 - imports torch: not part of what is timed
    from gankit.data import open_dataset
    start = time.perf_counter()
    ds = open_dataset(source, image_size=size)
    pixels = ds.images.numpy()
    # Read every page (a cached load is then complete), in blocks: a sum over the whole uint8 array
    # at once would make a 64-bit copy of it and measure that instead.
    total = sum(int(pixels[i:i + 1024].sum(dtype=np.uint64)) for i in range(0, len(pixels), 1024))
    seconds = time.perf_counter() - start
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": round(seconds, 2), "peak_mib": round(kib / 1024), "workers_peak_mib": round(workers_kib / 1024),
                      "images": len(ds), "checksum": total, "source_text": ds.source}))


def run_child(source: str, size: int, env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", "prepare", "--source", source, "--size", str(size)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare_timings(source: str, size: int, rounds: int, env: dict) -> dict:
    """First decodes and cached loads in turns (decode, load, decode, load, ...)."""
    sys.path.insert(0, str(REPO))
    from gankit.data import prepare
    first, cached = [], []
    for _ in range(rounds):
        os.environ["GANKIT_CACHE"] = env["GANKIT_CACHE"]
        prepare.clear(source)
        first.append(run_child(source, size, env))
        cached.append(run_child(source, size, env))
    manifest = next(m for _, m, _ in prepare.prepared_sets() if m["size"] == size)
    reasons = prepare.reason_counts(manifest["skipped"])
    print(f"{size} px: decode {[r['seconds'] for r in first]} s, cached {[r['seconds'] for r in cached]} s")
    return {
        "first_decode_s": [r["seconds"] for r in first], "cached_load_s": [r["seconds"] for r in cached],
        "first_decode_peak_mib": max(r["peak_mib"] for r in first),
        "first_decode_workers_peak_mib": max(r["workers_peak_mib"] for r in first),
        "cached_load_peak_mib": max(r["peak_mib"] for r in cached),
        "files": manifest["files"], "kept": manifest["kept"], "skipped": len(manifest["skipped"]),
        "skipped_by_reason": dict(reasons), "first_skipped": manifest["skipped"][:5],
        "upscaled": manifest["upscaled"], "channels": manifest["channels"], "bytes": manifest["bytes"],
        "same_pixels_every_time": len({r["checksum"] for r in first + cached}) == 1,
    }


def write_grid(source: str, size: int, env: dict, grid_dir: Path) -> None:
    """64 prepared pictures drawn at random (seed 0), 8 x 8, enlarged to about 512 px."""
    import numpy as np
    from PIL import Image

    os.environ["GANKIT_CACHE"] = env["GANKIT_CACHE"]
    from gankit.data import open_dataset
    ds = open_dataset(source, image_size=size)
    idx = np.random.default_rng(0).choice(len(ds), 64, replace=False)
    x = ds.images.numpy()[np.sort(idx)]
    c = x.shape[1]
    grid = x.reshape(8, 8, c, size, size).transpose(0, 3, 1, 4, 2).reshape(8 * size, 8 * size, c)
    img = Image.fromarray(grid[..., 0] if c == 1 else grid)
    img = img.resize((img.width * (512 // img.width or 1),) * 2, Image.Resampling.NEAREST)
    grid_dir.mkdir(parents=True, exist_ok=True)
    path = grid_dir / f"{Path(source).parent.name}-prepared-{size}.png"
    img.save(path)
    print(f"wrote {path}")


def training_speed(source: str, size: int, placements: list[str], rounds: int, steps: int, env: dict) -> dict:
    """images/s of `gankit train --preset fast` per placement, in turns; ratios to the first, pair by pair."""
    speeds: dict[str, list[float]] = {p: [] for p in placements}
    log_every = max(1, steps // 4)
    for _ in range(rounds):
        for placement in placements:
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "gankit", "train", "--preset", "fast", "--dataset", source,
                       "--image-size", str(size), "--steps", str(steps), "--data-placement", placement,
                       "--out", tmp + "/run", "-q", "--log-every", str(log_every), "--sample-every", str(10 * steps),
                       "--sample-every-early", str(10 * steps), "--checkpoint-every", str(10 * steps),
                       "--report", "false", "--tensorboard", "off"]
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                records = [json.loads(line) for line in open(tmp + "/run/metrics.jsonl")]
                rates = [r["images_per_s"] for r in records if "images_per_s" in r][1:]  # the first tick warms up
                speeds[placement].append(statistics.mean(rates))
        print("images/s:", {p: round(v[-1], 1) for p, v in speeds.items()})
    base = placements[0]
    return {"size": size, "steps": steps, "images_per_s": speeds,
            "ratio_to_" + base: {p: round(statistics.median(a / b for a, b in zip(speeds[p], speeds[base])), 3)
                                 for p in placements}}


def machine() -> dict:
    import torch
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version()}


def print_table(r: dict) -> None:
    print(f"\n{r['source']}: {r['machine']}")
    print("size | files | kept | skipped | upscaled | first decode s (median) | cached load s | peak MiB decode (+workers) | peak MiB cached")
    for size, s in r["sizes"].items():
        print(f"{size} | {s['files']} | {s['kept']} | {s['skipped']} {s['skipped_by_reason']} | {s['upscaled']} | "
              f"{statistics.median(s['first_decode_s']):.1f} | {statistics.median(s['cached_load_s']):.2f} | "
              f"{s['first_decode_peak_mib']} (+{s['first_decode_workers_peak_mib']}) | {s['cached_load_peak_mib']}")
    t = r["training"]
    print(f"training at {t['size']} px, {t['steps']} steps: " + ", ".join(
        f"{p} {statistics.median(v):.0f} images/s" for p, v in t["images_per_s"].items()))
    print("ratios:", t[next(k for k in t if k.startswith("ratio_to_"))])


if __name__ == "__main__":
    main()

"""A search for the colour recipe at equal wall-clock: every candidate trains for the same minutes
of this machine's CPU, and its whole quality curve is kept, not only its last point.

    python benchmarks/colour_search.py --candidates all --minutes 2            # the screen
    python benchmarks/colour_search.py --candidates dcgan,picked --minutes 20 --seeds 0
    python benchmarks/colour_search.py --candidates picked --minutes 5 --seeds 1,2

Each (candidate, seed) is one run directory, OUT/runs/SET-SIZE-CANDIDATE-seedS, trained with
`gankit train --max-minutes M --eval-at-minutes 1,2,5,10,20 (those up to M)` with the step limit
lifted, so the training clock is the only limit; the evaluations at the marks (5,000 samples, FID
and coverage, on the set's checked extractor) are kept off that clock. A run that exists is skipped
if it has reached M, and resumed to M otherwise, so a 5-minute run becomes a 20-minute one.

The extractor is the set's classifier from `benchmarks/extractor_checks.py` (OUT_CHECKS/SET-SIZE-
classifier.pt): it must pass the sensitivity check, or the search refuses to rank by it (a score
that likes blobs cannot choose between recipes that draw blobs). `--allow-failing-extractor`
overrides that for a look, and the results then say so. `--extractor FILE` scores with a classifier
of another set instead (openclipart's, on the sets the prior never saw), whose check on this set's
pictures benchmarks/cross_checks.py has run and stored beside it.

Writes OUT/search-SET-SIZE.json (every run's curve, images/s and last scores) and prints a table
ranked by FID at the last mark, with each candidate's ratio to `dcgan` at that mark when dcgan ran.
`--grids` also writes each run's 64 samples (seed 0) and a side-by-side PNG.
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
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_curves import curve  # noqa: E402

SETS = {  # name -> (folder, side, Debian package)
    "openclipart": ("/usr/share/openclipart/png", 32, "openclipart-png"),
    "tuxpaint": ("/usr/share/tuxpaint/stamps", 32, "tuxpaint-stamps-default"),
    "wesnoth": ("/usr/share/games/wesnoth/1.16/data/core/images/units", 64, "wesnoth-1.16-data"),
}
MARKS = (1, 2, 5, 10, 20)

# The `colour` preset as it was before this search (the same config, field for field), and one lever
# at a time laid over it; spelt out so that the search stays the same after the preset changed.
EMA = ["--ema-half-life", "10000", "--ema-rampup", "0.05"]
BASE = ["--preset", "dcgan", *EMA]
BETAS0 = ["--beta1-g", "0", "--beta1-d", "0", "--beta2-g", "0.99", "--beta2-d", "0.99"]
ROUND2 = [*BASE, "--batch-size", "32", *BETAS0]  # the second round's winner, the `colour` preset it made
PRIOR = ["--init", "prior", "--lr-g", "2e-4", "--lr-d", "2e-4", "--freeze-g", "0", "--ada", "none",
         "--ema-half-life", "10000"]
LR05 = ["--lr-g", "5e-5", "--lr-d", "5e-5"]
CANDIDATES: dict[str, list[str]] = {
    "dcgan": ["--preset", "dcgan"],
    "fast": ["--preset", "fast"],
    "colour": BASE,  # the preset before this search
    # what `gankit train --dataset FOLDER` picks (bs32-betas0-nhwc since the fourth round), from scratch
    # (its init named, so that the search stays the same if the default start ever changes), with its
    # EMA pinned as these runs had it at every size (the preset samples from G from 64 px on since)
    "picked": ["--init", "dcgan", *EMA],
    "bs64": [*BASE, "--batch-size", "64"],
    "bs32": [*BASE, "--batch-size", "32"],
    "resize": [*BASE, "--g-upsample", "resize"],
    "hinge-sn": [*BASE, "--loss", "hinge", "--spectral-norm"],
    "r1": [*BASE, "--r1-gamma", "0.05"],
    "lecam": [*BASE, "--lecam-weight", "0.3"],
    "translation": [*BASE, "--augment", "translation"],
    "mbstd": [*BASE, "--d-mbstd", "4"],
    "betas0": [*BASE, *BETAS0],
    "lr5": [*BASE, "--lr-g", "5e-4", "--lr-d", "5e-4"],
    "width32": [*BASE, "--width", "32"],
    "ttur": [*BASE, "--lr-d", "4e-4"],
    # the second round: the small batch, and what the first round liked, together
    "bs32-betas0": ROUND2,
    "width32-betas0": [*BASE, "--width", "32", *BETAS0],
    "width32-betas0-bs32": [*BASE, "--width", "32", "--batch-size", "32", *BETAS0],
    # the third round: one lever at a time over the second round's winner (the `colour` preset then)
    "bs32-betas0-noema": [*ROUND2, "--ema-half-life", "0"],
    "bs32-betas0-ema2k": [*ROUND2, "--ema-half-life", "2000"],
    "bs16-betas0": [*BASE, "--batch-size", "16", *BETAS0],
    "bs32-betas0-lr1": [*ROUND2, "--lr-g", "1e-4", "--lr-d", "1e-4"],
    "bs32-betas0-lr4": [*ROUND2, "--lr-g", "4e-4", "--lr-d", "4e-4"],
    "bs32-betas0-width48": [*ROUND2, "--width", "48"],
    "bs32-betas0-nhwc": [*ROUND2, "--channels-last"],  # the same arithmetic in NHWC layout: speed only
    "bs32-betas0-compile": [*ROUND2, "--compile"],  # torch.compile: its warm-up counts on the clock
    # the fourth round: the third round's two faster winners together
    "bs32-betas0-width48-nhwc": [*ROUND2, "--width", "48", "--channels-last"],
    # longer runs: D overfits the set within 10 minutes; ADA raises its augmentations when it does
    "picked-ada": ["--init", "dcgan", *EMA, "--ada", "default"],
    # the picked recipe started from the colour prior (benchmarks/pretrain_prior.py), on sets it never saw,
    # and the fine-tuning choices over it: FreezeD, a smaller learning rate, ADA. PRIOR pins the fields
    # that `--init prior` now sets by itself (presets.PRIOR_FINE_TUNE) to what it meant when these ran.
    "prior": PRIOR,
    "prior-freeze-d2": [*PRIOR, "--freeze-d", "2"],
    "prior-lr1": [*PRIOR, "--lr-g", "1e-4", "--lr-d", "1e-4"],
    "prior-ada": [*PRIOR, "--ada", "default"],
    "prior-ada-freeze-d2": [*PRIOR, "--ada", "default", "--freeze-d", "2"],
    # the second screen at 64 px: from the prior G's samples swing between minutes 1 and 5, and the
    # EMA (ramped up from 0 images) barely averages them; a fixed EMA from the prior, a smaller lr
    "prior-ada-ema5k": [*PRIOR, "--ada", "default", "--ema-half-life", "5000", "--ema-rampup", "none"],
    "prior-ada-lr05": [*PRIOR, "--ada", "default", *LR05],
    # the third: the smaller lr, smaller still, and with layers of G or D kept as the prior has them
    "prior-ada-lr02": [*PRIOR, "--ada", "default", "--lr-g", "2e-5", "--lr-d", "2e-5"],
    "prior-ada-lr05-freeze-g2": [*PRIOR, "--ada", "default", *LR05, "--freeze-g", "2"],
    "prior-ada-lr05-freeze-d2": [*PRIOR, "--ada", "default", *LR05, "--freeze-d", "2"],
    # the fourth: more of G kept, or G kept at a larger lr
    "prior-ada-lr05-freeze-g3": [*PRIOR, "--ada", "default", *LR05, "--freeze-g", "3"],
    "prior-ada-lr1-freeze-g2": [*PRIOR, "--ada", "default", "--lr-g", "1e-4", "--lr-d", "1e-4", "--freeze-g", "2"],
    # the fifth: without the EMA (the fixed one above averaged G's swings into worse samples)
    "prior-ada-lr05-freeze-g2-noema": [*PRIOR, "--ada", "default", *LR05, "--freeze-g", "2", "--ema-half-life", "0"],
    # what `--init prior` alone sets now (the screen's winner, in presets.PRIOR_FINE_TUNE)
    "prior-tuned": ["--init", "prior"],
    # ADA's automatic length is the run's images / 20: a user's run of the preset's 225,000 images lets
    # p cross [0, 1] in 11,250 images, but the search lifts the image limit (NO_STEP_LIMIT), which
    # leaves ADA's 500k, so p hardly moved in its runs (0.05 after 5 minutes at 64 px). These give
    # ADA the length a user's run has.
    "picked-ada-user": ["--init", "dcgan", *EMA, "--ada", "default", "--ada-length", "11250"],
    "prior-tuned-ada-user": ["--init", "prior", "--ada-length", "11250"],
    # the fine-tune from other 64-px priors than the one gankit ships, written by
    # `benchmarks/pretrain_prior.py --weights DIR`: G's own weights instead of its EMA (--raw-g), and
    # the same run taken on from 45 to 90 minutes
    "prior-tuned-raw-g": ["--init", "prior", "--prior-dir", "runs/prior-raw-g"],
    "prior-tuned-90min": ["--init", "prior", "--prior-dir", "runs/prior-90min"],
    # the 45-minute pretraining with ADA (`pretrain_prior.py --side 64 --minutes 45 --ada-length 100000
    # --weights runs/prior-ada-w`), which gankit ships since: without ADA the pretraining's D was sure
    # of every picture from the 60th minute
    "prior-tuned-ada-pretrained": ["--init", "prior", "--prior-dir", "runs/prior-ada-w"],
    # the same recipe from scratch as a user's run at 64 px has it (the preset samples from G there),
    # beside the fine-tune in one sitting
    "scratch-ada": ["--init", "dcgan", "--ada", "default"],
    # twice the fine-tune's rate from the 90-minute prior: with the EMA, from the 45-minute prior, it led
    # at 2 minutes and lost at 5, but the EMA was what held the fine-tune back then
    "prior-tuned-lr1": ["--init", "prior", "--prior-dir", "runs/prior-90min", "--lr-g", "1e-4", "--lr-d", "1e-4"],
}
FIRST_ROUND = [c for c in list(CANDIDATES)[:list(CANDIDATES).index("bs32-betas0")] if c != "fast"]


def side_by_side_grids(grids: list[tuple[str, Path]], path: Path) -> Path:
    """The grids in one PNG, each captioned with its candidate's name."""
    tiles = [(name, Image.open(file).convert("RGB")) for name, file in grids]
    caption, gap = 14, 8
    width = sum(t.width for _, t in tiles) + gap * (len(tiles) - 1)
    canvas = Image.new("RGB", (width, max(t.height for _, t in tiles) + caption), "white")
    x = 0
    for name, tile in tiles:
        canvas.paste(tile, (x, caption))
        ImageDraw.Draw(canvas).text((x + 2, 1), name, fill="black")
        x += tile.width + gap
    canvas.save(path)
    return path


def real_grid(folder: str, side: int, path: Path) -> Path:
    """64 real pictures of the set as gankit trains on them (seeded pick), the grids' yardstick."""
    if not path.exists():
        from gankit.config import make_config
        from gankit.run.pictures import save_grid
        from gankit.training.loop import open_data
        data = open_data(make_config({"dataset": folder, "image_size": side}), quiet=True)
        pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:64]
        save_grid(data.images[pick], path, nrow=8)
    return path


def extractor_check(evaluator: Path, name: str, side: int, own: bool) -> dict | None:
    """The sensitivity check that says whether `evaluator` can rank runs on set `name`: the one its
    file holds when it is the set's own classifier, else the check benchmarks/cross_checks.py ran
    on the set's pictures (None when it has not)."""
    if own:
        from gankit.metrics.classifier import load_classifier
        return load_classifier(evaluator)[1]["sensitivity"]
    checks = evaluator.parent / "cross-checks.json"
    rows = json.loads(checks.read_text())["rows"] if checks.exists() else []
    return next((r["check"] for r in rows if r["file"] == evaluator.name and r["set"] == f"{name} {side} px"), None)


def sh(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def trained_minutes(run_dir: Path) -> float:
    """Minutes of training clock the run has had (0 if it has none)."""
    state = run_dir / "metrics.jsonl"
    if not state.exists():
        return 0.0
    times = [json.loads(line).get("time_s", 0) for line in state.read_text().splitlines() if line.strip()]
    return max(times, default=0) / 60


NO_STEP_LIMIT = ["--images", "10000000000"]  # the training clock alone ends a run


def train(run_dir: Path, flags: list[str], minutes: float, evaluator: Path | None, eval_n: int,
          marks: tuple[float, ...] = MARKS) -> None:
    """Train the run (or resume it) until its training clock reads `minutes`, scored at the `marks`
    up to it on `evaluator` (None: not scored)."""
    watch = [] if evaluator is None else [
        "--eval-at-minutes", ",".join(f"{m:g}" for m in marks if m <= minutes), "--eval-evaluator", str(evaluator),
        "--eval-n", str(eval_n), "--eval-metrics", "fid,coverage"]
    if not (run_dir / "config.json").exists():
        sh([sys.executable, "-m", "gankit", "train", "-q", *flags, *NO_STEP_LIMIT,
            "--max-minutes", f"{minutes:g}", *watch, "--out", str(run_dir)])
        return
    left = minutes - trained_minutes(run_dir)
    scored = {p.get("mark_minutes") for p in curve(run_dir)["points"]} if left < 0.05 and watch else set()
    # a run stopped a moment short of its last mark scores it
    if left >= 0.05 or (watch and minutes not in scored):
        sh([sys.executable, "-m", "gankit", "train", "-q", "--resume", str(run_dir), "--max-minutes",
            f"{max(left, 0.01):.3f}", *watch])


def summary(run_dir: Path, name: str, seed: int) -> dict:
    """The run's curve, its images per second of training clock, and its config's batch size."""
    c = curve(run_dir)
    first_of_each = {}  # a run resumed by an older gankit may have scored a mark twice: the first counts
    for p in c["points"]:
        first_of_each.setdefault(p.get("mark_minutes"), p)
    c["points"] = list(first_of_each.values())
    last = c["points"][-1]
    config = json.loads((run_dir / "config.json").read_text())
    return {"candidate": name, "seed": seed, "flags": " ".join(CANDIDATES[name]), "batch_size": config["config"]["batch_size"],
            "images_per_s": round(last["images_seen"] / max(last["time_s"], 1e-9), 1),
            "points": [{k: p.get(k) for k in ("mark_minutes", "time_s", "images_seen", "step", "fid", "coverage",
                                              "floor_fid")} for p in c["points"]],
            "extractor": c["extractor"]}


def at_mark(row: dict, minutes: float) -> dict | None:
    return next((p for p in row["points"] if p["mark_minutes"] == minutes), None)


def table(rows: list[dict], minutes: float) -> str:
    """Candidates ranked by mean FID at the mark; ratio to dcgan's mean there."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        point = at_mark(r, minutes)
        if point:
            by.setdefault(r["candidate"], []).append({**point, "images_per_s": r["images_per_s"]})
    if not by:
        return f"(no run reached {minutes:g} minutes)"
    mean = {name: statistics.fmean(p["fid"] for p in points) for name, points in by.items()}
    lines = [f"| candidate | seeds | images/s | images at {minutes:g} min | FID at 1 / 2 / 5 / 10 / 20 min | "
             f"FID at {minutes:g} min | dcgan / this |", "|---|---:|---:|---:|---|---:|---:|"]
    for name in sorted(mean, key=mean.get):
        points = by[name]
        fids = sorted(p["fid"] for p in points)
        spread = f"{statistics.fmean(fids):.3g}" + (f" ({fids[0]:.3g}-{fids[-1]:.3g})" if len(fids) > 1 else "")
        first = next(r for r in rows if r["candidate"] == name)
        curve_text = " / ".join(f"{p['fid']:.3g}" for p in first["points"])
        ratio = f"{mean['dcgan'] / mean[name]:.2f}x" if "dcgan" in mean else ""
        lines.append(f"| {name} | {len(points)} | {statistics.fmean(p['images_per_s'] for p in points):.0f} | "
                     f"{statistics.fmean(p['images_seen'] for p in points):,.0f} | {curve_text} | {spread} | "
                     f"{ratio} |")
    floor = next(r for r in rows if at_mark(r, minutes))["points"][0]["floor_fid"]
    lines.append(f"| real pictures (floor) | | | | | {floor:.3g} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="openclipart", choices=list(SETS))
    parser.add_argument("--candidates", default="all", help=f"'all' (the first round of the screen) or any of {', '.join(CANDIDATES)}")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--minutes", type=float, default=2.0, help="training clock per run")
    parser.add_argument("--eval-n", type=int, default=5000)
    parser.add_argument("--checks", type=Path, default=Path("runs/checks"),
                        help="where benchmarks/extractor_checks.py wrote the extractors")
    parser.add_argument("--extractor", type=Path, default=None,
                        help="score with this classifier instead of the set's own: one trained on another set, "
                             "checked on this set's pictures by benchmarks/cross_checks.py")
    parser.add_argument("--allow-failing-extractor", action="store_true")
    parser.add_argument("--grids", action="store_true", help="sample each run's grid and put them side by side")
    parser.add_argument("--out", type=Path, default=Path("runs/search"))
    args = parser.parse_args(argv)

    folder, side, package = SETS[args.set]
    if not Path(folder).is_dir():
        print(f"colour_search: {folder} is missing: apt-get install -y {package}", file=sys.stderr)
        return 2
    evaluator = args.extractor or args.checks / f"{args.set}-{side}-classifier.pt"
    if not evaluator.exists():
        print(f"colour_search: no extractor {evaluator}: run python benchmarks/extractor_checks.py --sets {args.set} "
              f"--kinds classifier --out {args.checks}", file=sys.stderr)
        return 2
    check = extractor_check(evaluator, args.set, side, own=args.extractor is None)
    if check is None:
        print(f"colour_search: {evaluator} has not been checked on {args.set}'s pictures: run python "
              f"benchmarks/cross_checks.py --extractor {evaluator} --sets {args.set} --out {evaluator.parent}",
              file=sys.stderr)
        return 2
    if not check["passes"] and not args.allow_failing_extractor:
        print(f"colour_search: {evaluator} fails the sensitivity check: its FIDs cannot rank recipes "
              "(--allow-failing-extractor to look anyway)", file=sys.stderr)
        return 2
    names = FIRST_ROUND if args.candidates == "all" else args.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        print(f"colour_search: unknown candidates {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}",
              file=sys.stderr)
        return 2

    results = args.out / f"search-{args.set}-{side}.json"
    rows = json.loads(results.read_text())["rows"] if results.exists() else []
    for name in names:
        for seed in (int(s) for s in args.seeds.split(",")):
            run_dir = args.out / "runs" / f"{args.set}-{side}-{name}-seed{seed}"
            train(run_dir, [*CANDIDATES[name], "--dataset", folder, "--image-size", str(side), "--seed", str(seed)],
                  args.minutes, evaluator, args.eval_n)
            rows = [r for r in rows if (r["candidate"], r["seed"]) != (name, seed)] + [summary(run_dir, name, seed)]
            if args.grids:
                grid = run_dir / f"grid_{args.minutes:g}min.png"
                if not grid.exists():
                    sh([sys.executable, "-m", "gankit", "sample", str(run_dir), "-n", "64", "--seed", "0",
                        "--out", str(grid)])
            machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "torch": torch.__version__}
            results.parent.mkdir(parents=True, exist_ok=True)
            results.write_text(json.dumps({
                "what": f"{args.set} at {side} px; every run trains for the same training clock; FID and coverage "
                        f"of {args.eval_n:,} samples on {'the set' if args.extractor is None else 'another set'}'s classifier "
                        "at 1, 2, 5, 10, 20 minutes",
                "extractor": {"file": evaluator.name, "check_passes": check["passes"],
                              "checked_on": "its own set" if args.extractor is None else f"{args.set}'s pictures"},
                "machine": machine, "rows": rows}, indent=2) + "\n")
    if args.grids:
        runs = [args.out / "runs" / f"{args.set}-{side}-{n}-seed0" for n in names]
        shown = [("real pictures", real_grid(folder, side, args.out / f"real-{args.set}-{side}.png"))]
        shown += [(n, r / f"grid_{args.minutes:g}min.png") for n, r in zip(names, runs)
                 if (r / f"grid_{args.minutes:g}min.png").exists()]
        path = side_by_side_grids(shown, args.out / f"grids-{args.set}-{side}-{args.minutes:g}min.png")
        print(f"wrote {path}")
    for minutes in sorted({p["mark_minutes"] for r in rows for p in r["points"] if p["mark_minutes"]}):
        print(f"\n{args.set} {side} px, at {minutes:g} minutes of training:\n{table(rows, minutes)}")
    print(f"\nwrote {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

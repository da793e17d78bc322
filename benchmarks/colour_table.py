"""Colour pictures after 5 (and 20) CPU-minutes: what `gankit train --dataset FOLDER` picks, against
`dcgan` and `fast`, on real colour sets. The README's colour table and grids come from here.

    python benchmarks/colour_table.py                                   # both sets, 3 recipes, 5 min
    python benchmarks/colour_table.py --sets tuxpaint --recipes picked --seeds 1,2
    python benchmarks/colour_table.py --sets tuxpaint --recipes picked,dcgan-ada --holdout 80
    python benchmarks/colour_table.py --sets fashion-mnist --recipes colour,fast

Sets (Debian packages; `apt-get install -y openclipart-png tuxpaint-stamps-default`, and
`dataset-fashion-mnist` for the greyscale check): openclipart (8,105 clip-art PNGs in 22
category folders), tuxpaint (802 stamps in 17), fashion-mnist. Pictures are read at --image-size
with gankit's defaults (centre crop, transparency on white).

Recipes: `picked` names no preset, so gankit chooses by the data (the `colour` preset on colour
pictures); the others are presets, with flags where the name says so (RECIPES below). Each run
trains for the minutes given with the step limit lifted, so time is the only limit (wall-clock
minutes of the training process, checkpoints and grids included: run nothing else meanwhile),
then `gankit eval` scores --eval-n samples with each of the set's own extractors:
- `classifier`: `gankit train-evaluator` on the set's category folders (labelled);
- `contrastive`: `gankit train-evaluator --self-supervised`, trained without the labels.
Both are trained once per set and kept under OUT/evaluators. FID, KID and coverage are on that
extractor's scale, which belongs to that set: compare rows, not sets. Fashion-MNIST is scored
with the shipped classifier against its test split.

With --holdout N each run sets N pictures aside and logs D's accuracy gap between training and
held-out pictures (`d_heldout_gap`), the sign that D memorises: the table shows its last value.

Both extractors score every run; per set, the Spearman rank correlation of their FIDs over the
runs says whether the self-supervised one ranks generators as the labelled one does.

Writes OUT/colour.json (every run, and that agreement) and, per set and mark,
OUT/grids-SET-SIZE-Mmin.png: the 64 samples of each recipe (or of those --grids names) side by
side, seed 0. Finished pieces are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extractor_agreement import spearman  # noqa: E402
from quality_table import last_record, sh, shareable_protocol, summarise  # noqa: E402

NO_LIMIT = ["--images", "10000000000"]

SETS = {
    "openclipart": ("/usr/share/openclipart/png", "openclipart-png"),
    "tuxpaint": ("/usr/share/tuxpaint/stamps", "tuxpaint-stamps-default"),
    "fashion-mnist": ("fashion-mnist", "dataset-fashion-mnist"),
}

RECIPES = {
    "picked": [],  # no preset: what `gankit train --dataset FOLDER` chooses
    "dcgan": ["--preset", "dcgan"],
    "fast": ["--preset", "fast"],
    "colour": ["--preset", "colour"],
    # candidates for `colour`
    "fast-ada": ["--preset", "fast", "--ada", "default", "--ada-length", "20000"],
    "dcgan-ada": ["--preset", "dcgan", "--ada", "default", "--ada-length", "20000"],
    "dcgan-ada-slow": ["--preset", "dcgan", "--ada", "default", "--ada-length", "500000"],  # ADA's own speed
    "dcgan-ema": ["--preset", "dcgan", "--ema-half-life", "10000", "--ema-rampup", "0.05"],
    # the colour search's two levers (benchmarks/colour_search.py) on the greyscale recipe
    "fast-bs32-betas0": ["--preset", "fast", "--batch-size", "32", "--beta1-g", "0", "--beta1-d", "0",
                         "--beta2-g", "0.99", "--beta2-d", "0.99"],
}

EXTRACTORS = ("classifier", "contrastive")


def evaluator_file(out: Path, set_name: str, size: int, kind: str) -> Path:
    """The set's own extractor of `kind`, trained on first use."""
    path = out / "evaluators" / f"{set_name}-{size}-{kind}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = ["--self-supervised"] if kind == "contrastive" else []
        sh([sys.executable, "-m", "gankit", "train-evaluator", "-q", "--dataset", SETS[set_name][0],
            "--image-size", str(size), "--out", str(path), *extra])
    return path


def train_to(run_dir: Path, flags: list[str], minutes: float, done_minutes: float) -> None:
    """Train (or resume) until the run has had `minutes` of training in total."""
    budget = str(minutes - done_minutes)
    if not (run_dir / "config.json").exists():
        sh([sys.executable, "-m", "gankit", "train", "-q", *flags, *NO_LIMIT, "--max-minutes", budget,
            "--out", str(run_dir)])
    else:
        sh([sys.executable, "-m", "gankit", "train", "-q", "--resume", str(run_dir), *NO_LIMIT,
            "--max-minutes", budget])


def score(run_dir: Path, minutes: float, extractors: dict[str, Path | None], eval_n: int) -> dict:
    """{extractor: eval.json contents} of the run as it is now, kept as eval_Mmin_EXTRACTOR.json."""
    scores = {}
    for kind, file in extractors.items():
        path = run_dir / f"eval_{minutes:g}min_{kind}.json"
        if not path.exists():
            extra = ["--evaluator", str(file)] if file else []
            sh([sys.executable, "-m", "gankit", "eval", str(run_dir), "-n", str(eval_n),
                "--metrics", "fid,kid,coverage", "--json", str(path), *extra])
        scores[kind] = json.loads(path.read_text())
    return scores


def grid(run_dir: Path, minutes: float) -> Path:
    path = run_dir / f"grid_{minutes:g}min.png"
    if not path.exists():
        sh([sys.executable, "-m", "gankit", "sample", str(run_dir), "-n", "64", "--seed", "0", "--out", str(path)])
    return path


def measure(out: Path, set_name: str, recipe: str, seed: int, marks: list[float], args) -> list[dict]:
    size = 28 if set_name == "fashion-mnist" else args.image_size  # Fashion-MNIST trains at its own 28 px
    run_dir = out / "runs" / f"{set_name}-{size}-{recipe}-seed{seed}"
    flags = [*RECIPES[recipe], "--dataset", SETS[set_name][0], "--seed", str(seed)]
    if set_name != "fashion-mnist":
        flags += ["--image-size", str(size)]
    if args.holdout:
        flags += ["--holdout", str(args.holdout)]
    if set_name == "fashion-mnist":
        extractors: dict[str, Path | None] = {"classifier": None}  # the shipped one
    else:
        extractors = {kind: evaluator_file(out, set_name, size, kind) for kind in args.extractors.split(",")}
    rows, done = [], 0.0
    for minutes in marks:
        if not all((run_dir / f"eval_{minutes:g}min_{k}.json").exists() for k in extractors):
            train_to(run_dir, flags, minutes, done)
        scores = score(run_dir, minutes, extractors, args.eval_n)
        record = last_record(run_dir)
        info = json.loads((run_dir / "config.json").read_text())
        rows.append({"set": set_name, "size": size, "recipe": recipe, "preset": info.get("preset"), "seed": seed,
                     "minutes": minutes, "steps": record["step"], "images_seen": record["images_seen"],
                     "d_heldout_gap": record.get("d_heldout_gap"), "ada_p": record.get("ada_p"),
                     "grid": str(grid(run_dir, minutes).relative_to(out)),
                     "scores": {k: {"metrics": v["metrics"], "floor": v.get("floor", {}),
                                    "protocol": shareable_protocol(v)} for k, v in scores.items()}})
        done = minutes
    return rows


def side_by_side(out: Path, rows: list[dict], set_name: str, size: int, minutes: float,
                 recipes: list[str] | None = None) -> Path | None:
    """The seed-0 grids of the recipes (every one by default) on one set at one mark, captioned, in
    one PNG."""
    chosen = [r for r in rows if (r["set"], r["size"], r["minutes"], r["seed"]) == (set_name, size, minutes, 0)
              and (not recipes or r["recipe"] in recipes)]
    chosen.sort(key=lambda r: recipes.index(r["recipe"]) if recipes else 0)
    if not chosen:
        return None
    tiles = [Image.open(out / r["grid"]).convert("RGB") for r in chosen]
    caption = 16
    width = sum(t.width for t in tiles) + 8 * (len(tiles) - 1)
    canvas = Image.new("RGB", (width, max(t.height for t in tiles) + caption), "white")
    x = 0
    for r, tile in zip(chosen, tiles):
        canvas.paste(tile, (x, caption))
        fid = r["scores"]["classifier"]["metrics"]["fid"]
        ImageDraw.Draw(canvas).text((x + 2, 2), f"{r['recipe']} ({r['preset']}): FID {fid:.3g}", fill="black")
        x += tile.width + 8
    path = out / f"grids-{set_name}-{size}-{minutes:g}min.png"
    canvas.save(path)
    return path


def table(rows: list[dict]) -> str:
    kinds = [k for k in EXTRACTORS if any(k in r["scores"] for r in rows)]
    head = "| set | recipe (preset) | minutes | seeds | images seen | " + " | ".join(
        f"FID ({k}) | coverage ({k})" for k in kinds) + " | D held-out gap |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    keys = dict.fromkeys((r["set"], r["size"], r["recipe"], r["minutes"]) for r in rows)
    for set_name, size, recipe, minutes in keys:
        group = [r for r in rows if (r["set"], r["size"], r["recipe"], r["minutes"]) == (set_name, size, recipe, minutes)]
        cells = []
        for k in kinds:
            have = [r["scores"][k]["metrics"] for r in group if k in r["scores"]]
            cells += [summarise([m["fid"] for m in have]) if have else "", summarise([m["coverage"] for m in have]) if have else ""]
        gaps = [r["d_heldout_gap"] for r in group if r["d_heldout_gap"] is not None]
        lines.append(f"| {set_name} {size} px | {recipe} (`{group[0]['preset']}`) | {minutes:g} | {len(group)} | "
                     f"{summarise([r['images_seen'] for r in group])} | " + " | ".join(cells) +
                     f" | {summarise(gaps) if gaps else ''} |")
    for set_name, size in dict.fromkeys((r["set"], r["size"]) for r in rows):
        first = next(r for r in rows if (r["set"], r["size"]) == (set_name, size))
        cells = []
        for k in kinds:
            f = first["scores"].get(k, {}).get("floor") or {}
            cells += [f"{f['fid']:.3g}" if f else "", f"{f['coverage']:.3g}" if f else ""]
        lines.append(f"| {set_name} {size} px | real pictures (floor) | | | | " + " | ".join(cells) + " | |")
    return "\n".join(lines)


def agreement(rows: list[dict]) -> dict[str, dict]:
    """Per set: do its two extractors rank the runs (every recipe, seed and mark) alike? The
    Spearman rank correlation of their FIDs, over the runs both scored."""
    out = {}
    for set_name, size in dict.fromkeys((r["set"], r["size"]) for r in rows):
        both = [r for r in rows if (r["set"], r["size"]) == (set_name, size) and set(EXTRACTORS) <= set(r["scores"])]
        if len(both) >= 3:
            fids = {k: [r["scores"][k]["metrics"]["fid"] for r in both] for k in EXTRACTORS}
            out[f"{set_name}-{size}"] = {"runs": len(both), "spearman": spearman(*fids.values()),
                                         **{f"fid_{k}": v for k, v in fids.items()}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="openclipart,tuxpaint")
    parser.add_argument("--recipes", default="picked,dcgan,fast", help=f"any of {', '.join(RECIPES)}")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--minutes", default="5", help="marks at which the runs are scored, e.g. 5,20")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--extractors", default=",".join(EXTRACTORS))
    parser.add_argument("--holdout", type=int, default=0, help="pictures each run sets aside to watch D memorise")
    parser.add_argument("--eval-n", type=int, default=5000)
    parser.add_argument("--grids", default="", help="recipes whose grids go side by side (default: every one)")
    parser.add_argument("--out", default="runs/colour")
    args = parser.parse_args()

    marks = sorted(float(m) for m in args.minutes.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for set_name in args.sets.split(","):
        path, package = SETS[set_name]
        if set_name != "fashion-mnist" and not Path(path).is_dir():
            sys.exit(f"{path} is missing: apt-get install -y {package}")
    results = out / "colour.json"
    old = json.loads(results.read_text())["rows"] if results.exists() else []
    rows = []
    for set_name in args.sets.split(","):
        for recipe in args.recipes.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                rows += measure(out, set_name, recipe, seed, marks, args)
    # Rows of earlier invocations (other seeds, sets or recipes) stay in the file and the table.
    new = {(r["set"], r["size"], r["recipe"], r["seed"], r["minutes"]) for r in rows}
    rows = [r for r in old if (r["set"], r["size"], r["recipe"], r["seed"], r["minutes"]) not in new] + rows
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "torch": torch.__version__, "threads": torch.get_num_threads()}
    agree = agreement(rows)
    results.write_text(json.dumps({"machine": machine, "rows": rows, "agreement": agree}, indent=2))
    for set_name, size, minutes in dict.fromkeys((r["set"], r["size"], r["minutes"]) for r in rows):
        side_by_side(out, rows, set_name, size, minutes, [g for g in args.grids.split(",") if g])
    print(f"\nmachine: {machine}\n")
    print(table(rows))
    for key, a in agree.items():
        print(f"{key}: the classifier and the contrastive extractor rank {a['runs']} runs with Spearman "
              f"rho = {a['spearman']:.3f}")


if __name__ == "__main__":
    main()

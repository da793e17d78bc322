"""The sensitivity check of each development set's extractors, as tables for docs/measurements.md.

    python benchmarks/extractor_checks.py --sets tuxpaint,openclipart,wesnoth --out runs/checks

For each set it trains the classifier and the self-supervised extractor with `gankit
train-evaluator` (gankit's defaults, seed 0: the classifier on labels from the deepest folders
with 30 pictures per class, augmented, while held-out accuracy rises; 300 self-supervised steps),
at the set's size and with the set's own options (wesnoth: the 21 faction folders as labels, at most
12 passes or 100 steps, and its held-out pictures by unit name, so that no unit's animation frames
are on both sides), into
OUT/SET-KIND.pt, reads the check the file stores, and writes OUT/checks.json and OUT/checks.md:
held-out accuracy, the floor, and every degradation's FID with its multiple of the floor. An
extractor file already in OUT is reused (delete it to train again).

The sets are Debian packages. A set whose folder is missing is skipped with the reason and the
package to install (`sudo apt-get install PACKAGE`; `--install` runs that itself).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from gankit.errors import UserError

# name -> (folder, side in pixels, Debian package)
SETS = {
    "tuxpaint": ("/usr/share/tuxpaint/stamps", 32, "tuxpaint-stamps-default"),
    "openclipart": ("/usr/share/openclipart/png", 32, "openclipart-png"),
    "wesnoth": ("/usr/share/games/wesnoth/1.16/data/core/images/units", 64, "wesnoth-1.16-data"),
}
# name -> train_evaluator's options beyond gankit's defaults. Wesnoth's unit sub-folders hold one
# unit's frames each, so labels stay the faction folders, and frames are held out by unit. At 64 px
# a pass or a step costs four times what it does at 32 px on a 2-core CPU, so the classifier takes
# at most 12 passes and the self-supervised extractor 100 steps: a few minutes each.
OPTIONS = {
    "wesnoth": {"label_depth": 1, "holdout_groups": "name", "max_epochs": 12, "steps": 100},
}
KINDS = ("classifier", "self-supervised")


def ensure_set(name: str, install: bool) -> tuple[Path | None, str | None]:
    """(folder, None), or (None, why it is skipped)."""
    folder, _, package = SETS[name]
    if not Path(folder).is_dir() and install:
        subprocess.run(["sudo", "apt-get", "install", "-y", package], check=False)
    if not Path(folder).is_dir():
        return None, f"{folder} is missing: install it with `sudo apt-get install {package}` (or pass --install)"
    return Path(folder), None


def extractor_file(name: str, kind: str, out: Path, side: int | None = None) -> tuple[Path, dict, float]:
    """Train (or reuse) one extractor file at the set's side (or `side`); (path, its meta, seconds it took here)."""
    from gankit.metrics.classifier import load_classifier
    from gankit.metrics.contrastive import load_contrastive
    from gankit.metrics.train_evaluator import train_evaluator

    folder, own_side, _ = SETS[name]
    side = side or own_side
    path = out / f"{name}-{side}-{kind}.pt"
    load = load_contrastive if kind == "self-supervised" else load_classifier
    if path.exists():
        return path, load(path)[1], 0.0
    start = time.perf_counter()
    options = dict(OPTIONS.get(name, {}))
    for option in ("label_depth", "max_epochs") if kind == "self-supervised" else ("steps",):
        options.pop(option, None)
    train_evaluator(folder, path, image_size=side, self_supervised=kind == "self-supervised", quiet=True, **options)
    return path, load(path)[1], time.perf_counter() - start


def markdown(rows: list[dict]) -> str:
    """One table: a column per set and extractor, a row per degradation (FID and its multiple of
    the floor), the accuracy, the floor and the verdict first."""
    if not rows:
        return "(no extractor checked)"
    head = ["", *[f"{r['set']}, {r['kind']}" for r in rows]]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(rows) + "|"]

    def line(label: str, cells: list[str]) -> None:
        lines.append("| " + " | ".join([label, *cells]) + " |")

    line("held-out accuracy", [f"{r['accuracy']:.1%} ({r['accuracy_is']})" if r.get("accuracy") is not None else ""
                               for r in rows])
    line("check", ["passes" if r["check"]["passes"] else "**fails**" for r in rows])
    line("floor FID", [f"{r['check']['floor_fid']:.3g}" for r in rows])
    names = list(dict.fromkeys(d["what"].replace("classes", "groups").replace(
        "8 clusters of its own features", "groups") for r in rows for d in r["check"]["degradations"]))
    for name in names:
        cells = []
        for r in rows:
            found = [d for d in r["check"]["degradations"] if d["what"].replace("classes", "groups").replace(
                "8 clusters of its own features", "groups") == name]
            cells.append(f"{found[0]['fid']:.3g} ({found[0]['times_floor']:.3g}x)" if found else "")
        line(name, cells)
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """The short table: accuracy, floor, the two barred multiples and the verdict, a row per extractor."""
    lines = ["| set | extractor | held-out accuracy | floor FID | 2x2 shuffle / floor | average / floor | check |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        by_what = {d["what"]: d for d in r["check"]["degradations"]}
        shuffle = next(d for w, d in by_what.items() if w.startswith("2x2"))
        average = next(d for w, d in by_what.items() if w.startswith("two pictures averaged"))
        accuracy = f"{r['accuracy']:.1%} ({r['accuracy_is']})" if r.get("accuracy") is not None else ""
        lines.append(f"| {r['set']} | {r['kind']} | {accuracy} | {r['check']['floor_fid']:.3g} | "
                     f"{shuffle['times_floor']:.3g}x | {average['times_floor']:.3g}x | "
                     f"{'passes' if r['check']['passes'] else '**fails**'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    parser.add_argument("--kinds", default=",".join(KINDS), help="classifier, self-supervised or both")
    parser.add_argument("--out", type=Path, default=Path("runs/checks"))
    parser.add_argument("--install", action="store_true", help="apt-get install a missing set's package")
    parser.add_argument("--side", type=int, default=None,
                        help="train at this side instead of each set's own (openclipart at 64 px: the 64-px prior's curve)")
    args = parser.parse_args(argv)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [s for s in sets if s not in SETS] + [k for k in kinds if k not in KINDS]
    if unknown:
        print(f"extractor_checks: unknown {', '.join(unknown)}; sets: {', '.join(SETS)}; kinds: {', '.join(KINDS)}",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], {}
    for name in sets:
        folder, why = ensure_set(name, args.install)
        if folder is None:
            skipped[name] = why
            print(f"{name}: skipped: {why}")
            continue
        for kind in kinds:
            try:
                path, meta, seconds = extractor_file(name, kind, args.out, args.side)
            except UserError as exc:
                skipped[f"{name} {kind}"] = str(exc)
                print(f"{name} {kind}: skipped: {exc}")
                continue
            accuracy = meta.get("test_accuracy", meta.get("quality", {}).get("knn_accuracy"))
            rows.append({"set": f"{name} {args.side or SETS[name][1]} px", "kind": kind, "file": path.name,
                         "command": meta.get("command"), "labels": meta.get("labels"),
                         "training": meta.get("training"), "holdout": meta.get("holdout"),
                         "epochs": meta.get("epochs"), "steps": meta.get("steps"), "accuracy": accuracy,
                         "accuracy_is": "test accuracy" if "test_accuracy" in meta else "5-NN accuracy",
                         "check": meta["sensitivity"], "seconds_here": round(seconds, 1)})
            verdict = "passes" if meta["sensitivity"]["passes"] else "fails"
            print(f"{name} {kind}: floor {meta['sensitivity']['floor_fid']:.3g}, check {verdict} ({path})")
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    (args.out / "checks.json").write_text(json.dumps({"machine": machine, "rows": rows, "skipped": skipped},
                                                     indent=2) + "\n", encoding="utf-8")
    (args.out / "checks.md").write_text(summary(rows) + "\n\n" + markdown(rows) + "\n", encoding="utf-8")
    print(summary(rows))
    print(markdown(rows))
    print(f"wrote {args.out / 'checks.json'} and {args.out / 'checks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

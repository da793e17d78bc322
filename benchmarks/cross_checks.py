"""The sensitivity check of an extractor on another set's pictures: can it score fine-tuning there?

    python benchmarks/cross_checks.py --extractor runs/checks/openclipart-32-classifier.pt --sets tuxpaint
    python benchmarks/cross_checks.py --extractor runs/checks64/openclipart-64-classifier.pt --sets wesnoth

A set's own classifier may fail the check (tuxpaint's and wesnoth's do: they learnt colour and
texture from a few hundred or thousand pictures, and score pictures with shuffled tiles kindly). A
classifier of a larger set may still see objects in this one's pictures. This runs the same check
`gankit train-evaluator` runs (benchmarks/extractor_checks.py has the sets and their options): the
set split as its own classifier's was, read at the set's own size (the size its runs train at; an
extractor of another size resizes what it scores), the larger part as the reference, the held-out
part as the floor, each degradation against it. An FID that passes here can rank runs on this set.

Writes OUT/cross-checks.json (one row per extractor and set: the whole check) and prints the short
table of extractor_checks.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extractor_checks import OPTIONS, SETS, ensure_set, summary  # noqa: E402


def cross_check(extractor: Path, name: str) -> dict:
    """The check of `extractor` on set `name`, split as that set's own classifier's split was."""
    from gankit.metrics.classifier import ClassifierExtractor, load_classifier
    from gankit.metrics.sensitivity import check_extractor
    from gankit.metrics.train_evaluator import open_train_test

    folder, side, _ = SETS[name]
    model, meta = load_classifier(extractor)
    options = {k: v for k, v in OPTIONS.get(name, {}).items() if k in ("label_depth", "holdout_groups")}
    options.setdefault("label_depth", "auto")
    reference, held, reference_text, held_text = open_train_test(str(folder), None, image_size=side, **options)
    check = check_extractor(ClassifierExtractor.of_model(model, meta), reference.images, held.images, held.labels,
                            reference_about=f"{name} pictures ({reference_text})", held_about=f"{name} pictures ({held_text})")
    return {"set": f"{name} {side} px", "kind": f"classifier of {meta['dataset']}",
            "file": extractor.name, "command": meta.get("command"), "accuracy": None, "check": check}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extractor", type=Path, required=True, help="a classifier file (gankit train-evaluator)")
    parser.add_argument("--sets", default="tuxpaint", help=f"comma-separated, of {', '.join(SETS)}")
    parser.add_argument("--out", type=Path, default=Path("runs/checks"))
    args = parser.parse_args(argv)
    rows = []
    for name in (s.strip() for s in args.sets.split(",") if s.strip()):
        if name not in SETS:
            print(f"cross_checks: unknown set {name}; sets: {', '.join(SETS)}", file=sys.stderr)
            return 2
        folder, why = ensure_set(name, install=False)
        if folder is None:
            print(f"{name}: skipped: {why}")
            continue
        rows.append(cross_check(args.extractor, name))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "cross-checks.json"
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    keep = [r for r in old if (r["file"], r["set"]) not in {(n["file"], n["set"]) for n in rows}]
    path.write_text(json.dumps({"rows": keep + rows}, indent=1) + "\n", encoding="utf-8")
    print(summary(rows))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The sensitivity check of the classifiers gankit ships, written beside them as `<file>.check.json`.

`gankit train-evaluator` stores the check inside the files it writes; the shipped weights predate
it, and rewriting them would change their fingerprint (and every cached reference feature), so
their checks live beside them. This runs the same check on the same pictures train-evaluator
would: the split each file was trained on as the reference, its held-out split as the floor.

    python tools/check_shipped_extractors.py            # writes gankit/weights/*.check.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent.parent / "gankit" / "weights"
SHIPPED = {"fashion-mnist": "fashion-mnist-classifier.pt", "mnist-5k": "mnist-classifier.pt"}


def main() -> int:
    from gankit.metrics.classifier import ClassifierExtractor, load_classifier
    from gankit.metrics.sensitivity import check_extractor, describe_check
    from gankit.metrics.train_evaluator import open_train_test

    for dataset, name in SHIPPED.items():
        path = WEIGHTS / name
        model, meta = load_classifier(path)
        train, test, train_text, test_text = open_train_test(dataset, None)
        check = check_extractor(ClassifierExtractor.of_model(model, meta), train.images, test.images, test.labels,
                                reference_about=f"pictures it trained on ({train_text})",
                                held_about=f"pictures it never saw ({test_text})")
        out = path.with_suffix(".check.json")
        out.write_text(json.dumps(check, indent=1) + "\n", encoding="utf-8")
        print(describe_check(check, name))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

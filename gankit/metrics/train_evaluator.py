"""``gankit train-evaluator``: train and save the feature extractor `gankit eval --evaluator` reads.

For a labelled dataset the evaluation classifier; for pictures without labels (or with
``--self-supervised``) the contrastive extractor."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import torch

import gankit
from gankit.data import ImageSet, open_dataset
from gankit.errors import UserError
from gankit.metrics.classifier import ClassifierExtractor, load_classifier, save_classifier, train_classifier
from gankit.metrics.evaluator_split import HOLDOUT_FRACTION, HOLDOUT_SEED, split_holdout
from gankit.metrics.sensitivity import check_extractor, describe_check

EPOCHS = 8  # the classifier's passes over its training images


def default_output(dataset: str, kind: str = "classifier") -> Path:
    """``$GANKIT_CACHE/weights/<dataset>-<kind>.pt``, by default under ``~/.cache/gankit``.

    A dataset given by path is named by its file or folder.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset).stem or dataset).strip("-.") or "dataset"
    root = os.environ.get("GANKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "gankit") / "weights" / f"{stem}-{kind}.pt"


def open_train_test(dataset: str, data_dir: str | None = None, **picture_options) -> tuple[ImageSet, ImageSet, str, str]:
    """(train, test, train description, test description) for ``dataset``; ``picture_options``
    (image_size, fit, alpha) go to ``open_dataset`` as a run's would."""
    train = open_dataset(dataset, data_dir=data_dir, split="train", **picture_options)
    if train.labels is None:
        raise UserError(
            f"{dataset}: the images have no labels, and the evaluation classifier learns from labels; "
            "use an image folder with one sub-folder per class, or a .npz with labels"
        )
    try:
        test = open_dataset(dataset, data_dir=data_dir, split="test", **picture_options)
    except UserError as exc:
        # open_dataset refuses "test" for sources that are a single set of images; any other
        # failure (e.g. a missing test file of a real split) is the user's to see.
        if "no test split" not in str(exc):
            raise
        n = len(train)
        train, test = split_holdout(train)
        return (
            train,
            test,
            f"{len(train)} of the {n} images of {dataset} (the rest are held out)",
            f"held-out {len(test)} of the {n} images of {dataset} ({HOLDOUT_FRACTION:.0%}, "
            f"random split with torch seed {HOLDOUT_SEED}: {dataset} has no test split)",
        )
    return train, test, f"{dataset} train split ({len(train)} images)", f"{dataset} test split ({len(test)} images)"


def train_evaluator(
    dataset: str,
    out: str | Path | None = None,
    *,
    data_dir: str | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    self_supervised: bool = False,
    seed: int = 0,
    quiet: bool = False,
    image_size: int | None = None,
    fit: str = "crop",
    alpha: str = "white",
) -> tuple[Path, dict]:
    """Train the evaluator for ``dataset`` and save it to ``out``; return (path, meta).

    The classifier (``epochs``, default 8) for labelled pictures; the contrastive extractor
    (``steps``, default ``contrastive.STEPS``) with ``self_supervised`` or, said aloud, for
    pictures without labels. ``out`` defaults to ``default_output(dataset, kind)``.
    ``image_size``, ``fit`` and ``alpha`` read the pictures as a run with those flags reads them.
    Nothing is written before training has finished.
    """
    picture_options = {"image_size": image_size, "fit": fit, "alpha": alpha}
    if not self_supervised:
        train = open_dataset(dataset, data_dir=data_dir, split="train", **picture_options)
        if train.labels is not None and steps is not None:
            raise UserError("--steps counts the self-supervised extractor's training; the classifier trains "
                            "for --epochs (or add --self-supervised)")
        if train.labels is None:
            if epochs is not None:
                raise UserError(f"{dataset}: the pictures have no labels, so train-evaluator trains the "
                                "self-supervised extractor, which counts --steps, not --epochs; drop --epochs")
            print(f"{dataset}: the pictures have no labels, so no classifier can learn them: training the "
                  "self-supervised (contrastive) extractor instead, as --self-supervised does")
            self_supervised = True
    if self_supervised:
        if epochs is not None:
            raise UserError("--epochs counts the classifier's training; the self-supervised extractor trains "
                            "for --steps")
        return _train_contrastive(dataset, out, data_dir, steps, seed, quiet, picture_options)
    return _train_classifier(dataset, out, data_dir, EPOCHS if epochs is None else epochs, seed, quiet,
                             picture_options)


def _picture_flags(image_size: int | None, fit: str, alpha: str) -> str:
    return ((f" --image-size {image_size}" if image_size else "") + (f" --fit {fit}" if fit != "crop" else "")
            + (f" --alpha {alpha}" if alpha != "white" else ""))


def _train_contrastive(dataset: str, out: str | Path | None, data_dir: str | None, steps: int | None, seed: int,
                       quiet: bool, picture_options: dict) -> tuple[Path, dict]:
    from gankit.metrics.contrastive import STEPS
    from gankit.metrics.train_contrastive import train_contrastive_evaluator

    out = Path(out).expanduser() if out is not None else default_output(dataset, "contrastive")
    steps = STEPS if steps is None else steps
    train = open_dataset(dataset, data_dir=data_dir, split="train", **picture_options)
    command = (f"gankit train-evaluator --dataset {dataset} --self-supervised --out {out} --steps {steps} "
               f"--seed {seed}" + (f" --data-dir {data_dir}" if data_dir else "") + _picture_flags(**picture_options))
    return train_contrastive_evaluator(train, dataset, out, command=command, steps=steps, seed=seed, quiet=quiet,
                                       picture_options=picture_options)


def _train_classifier(dataset: str, out: str | Path | None, data_dir: str | None, epochs: int, seed: int,
                      quiet: bool, picture_options: dict) -> tuple[Path, dict]:
    """Train the evaluation classifier on ``dataset``'s train split, test it, save it to ``out``.

    A source without a test split (mnist-5k, an image folder, an array file) is split 80/20
    with a fixed seed; the meta says so. Prints the test accuracy and where the file went.
    """
    out = Path(out).expanduser() if out is not None else default_output(dataset)
    train, test, train_text, test_text = open_train_test(dataset, data_dir, **picture_options)
    if train.image_shape[0] == 4:  # train_classifier flattens it; the meta says so
        train_text += " (RGBA, composited onto white: the classifier sees RGB)"
    if not quiet:
        print(f"training the evaluation classifier on {train_text}; testing on {test_text}")
    start = time.perf_counter()
    model, test_accuracy = train_classifier(train, test, epochs=epochs, seed=seed, quiet=quiet)
    seconds = time.perf_counter() - start
    class_names = train.class_names or [str(i) for i in range(model.num_classes)]
    meta = {
        "dataset": train.name,
        "train": train_text,
        "test": test_text,
        "class_names": list(class_names),
        "test_accuracy": float(test_accuracy),
        "epochs": int(epochs),
        "seed": int(seed),
        "train_seconds": round(seconds, 1),
        # how its pictures were read: `gankit eval IMAGES` reads the reference the same way
        "image_size": int(picture_options.get("image_size") or train.image_shape[-1]),
        "fit": str(picture_options.get("fit") or "crop"),
        "alpha": str(picture_options.get("alpha") or "white"),
        "gankit_version": gankit.__version__,
        "torch_version": str(torch.__version__),
        "command": (f"gankit train-evaluator --dataset {dataset} --out {out} --epochs {epochs} --seed {seed}"
                    + _picture_flags(**picture_options)),
    }
    meta["sensitivity"] = check_extractor(ClassifierExtractor.of_model(model, meta), train.images, test.images,
                                          test.labels, reference_about="pictures it trained on",
                                          held_about="test pictures it never saw")
    save_classifier(model, out, meta)
    # Read back what was written, so the caller gets the meta exactly as the file holds it.
    meta = load_classifier(out)[1]
    print(describe_check(meta["sensitivity"]))
    print(f"test accuracy {test_accuracy:.2%} on {test_text}; wrote {out} ({seconds:.0f} s of training)")
    return out, meta

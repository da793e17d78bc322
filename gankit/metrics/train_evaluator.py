"""``gankit train-evaluator``: train and save the feature extractor `gankit eval --evaluator` reads.

For a labelled dataset the evaluation classifier; for pictures without labels (or with
``--self-supervised``) the contrastive extractor."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

import torch

import gankit
from gankit.data import ImageSet, open_dataset
from gankit.data.folder_labels import MIN_PER_CLASS, labels_at_depth
from gankit.data.listing import list_pictures
from gankit.data.name_groups import picture_groups
from gankit.data.picture_names import kept_picture_names
from gankit.errors import UserError
from gankit.metrics.classifier import (
    MAX_EPOCHS,
    PATIENCE,
    ClassifierExtractor,
    load_classifier,
    save_classifier,
    train_classifier,
)
from gankit.metrics.evaluator_split import (
    HOLDOUT_FRACTION,
    HOLDOUT_SEED,
    holdout_meta,
    split_holdout,
)
from gankit.metrics.sensitivity import check_extractor, describe_check

# The classifier's defaults: labels from the deepest folder level with enough pictures per
# class, augmented training pictures, and passes while held-out accuracy rises (early stopping).
# `--label-depth 1 --no-augment --epochs 8` trains it as gankit did before.
LABEL_DEPTH = "auto"


def default_output(dataset: str, kind: str = "classifier") -> Path:
    """``$GANKIT_CACHE/weights/<dataset>-<kind>.pt``, by default under ``~/.cache/gankit``.

    A dataset given by path is named by its file or folder.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset).stem or dataset).strip("-.") or "dataset"
    root = os.environ.get("GANKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "gankit") / "weights" / f"{stem}-{kind}.pt"


def folder_relabelled(train: ImageSet, dataset: str, label_depth: int | str, min_per_class: int,
                      picture_options: dict) -> tuple[ImageSet, str | None]:
    """``train`` with labels from ``label_depth`` folder levels (see gankit.data.folder_labels), and
    a phrase for the meta; unchanged (None) for depth 1 or a source that is not a folder tree."""
    if label_depth == 1 or train.labels is None:
        return train, None
    root = Path(dataset).expanduser()
    is_pictures = root.is_dir() or (root.is_file() and root.suffix.lower() == ".zip")
    by_folders = is_pictures and list_pictures(root).labelled_by == "class sub-folders"
    names = kept_picture_names(dataset, **picture_options) if by_folders else None
    if names is None or len(names) != len(train):
        if label_depth == "auto":  # the default: a source labelled otherwise keeps its labels
            return train, None
        raise UserError(f"--label-depth {label_depth}: {dataset} is not an image folder with class sub-folders; "
                        "drop --label-depth (or give 1)")
    labels, class_names = labels_at_depth(names, label_depth, min_per_class)
    relabelled = dataclasses.replace(train, labels=torch.tensor(labels, dtype=torch.int64), class_names=class_names)
    about = (f"{len(class_names)} classes from the folders"
             + (f", as deep as every class keeps {min_per_class} pictures" if label_depth == "auto"
                else f" {label_depth} levels deep"))
    return relabelled, about


def group_keys(dataset: str, train: ImageSet, rule: str, picture_options: dict) -> list[str] | None:
    """A group key per picture of ``train`` by ``rule`` (None for "picture": each its own group)."""
    if rule == "picture":
        picture_groups([], rule)
        return None
    names = kept_picture_names(dataset, **picture_options)
    if names is None or len(names) != len(train):
        raise UserError(f"--holdout-groups {rule}: {dataset} is not an image folder, and the groups come from "
                        "its file names; drop --holdout-groups")
    return picture_groups(names, rule)


def open_train_test(dataset: str, data_dir: str | None = None, *, label_depth: int | str = 1,
                    min_per_class: int = MIN_PER_CLASS, holdout_groups: str = "picture", extra: dict | None = None,
                    **picture_options) -> tuple[ImageSet, ImageSet, str, str]:
    """(train, test, train description, test description) for ``dataset``; ``picture_options``
    (image_size, fit, alpha) go to ``open_dataset`` as a run's would. ``extra``, where given,
    gets the meta's entries about labels and the split."""
    extra = {} if extra is None else extra
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
        train, labels_about = folder_relabelled(train, dataset, label_depth, min_per_class, picture_options)
        if labels_about:
            extra["labels"] = labels_about
        groups = group_keys(dataset, train, holdout_groups, picture_options)
        train, test = split_holdout(train, groups)
        how = "random split" if groups is None else f"whole groups of pictures by --holdout-groups {holdout_groups}"
        if groups is not None:
            extra["holdout"] = {**holdout_meta(n, holdout_groups, groups), "fit": picture_options.get("fit", "crop")}
        return (
            train,
            test,
            f"{len(train)} of the {n} images of {dataset} (the rest are held out)",
            f"held-out {len(test)} of the {n} images of {dataset} ({HOLDOUT_FRACTION:.0%}, "
            f"{how} with torch seed {HOLDOUT_SEED}: {dataset} has no test split)",
        )
    # `auto` (the default) means as deep as the data allows: a set with its own split keeps its labels
    if label_depth not in (1, "auto") or holdout_groups != "picture":
        raise UserError(f"{dataset} has a test split of its own: --label-depth and --holdout-groups apply to image "
                        "folders only; drop them")
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
    label_depth: int | str = LABEL_DEPTH,
    min_per_class: int = MIN_PER_CLASS,
    augment: bool = True,
    holdout_groups: str = "picture",
    max_epochs: int = MAX_EPOCHS,
) -> tuple[Path, dict]:
    """Train the evaluator for ``dataset`` and save it to ``out``; return (path, meta).

    The classifier for labelled pictures (``epochs`` passes, default: as long as held-out
    accuracy rises; ``label_depth``, ``min_per_class``, ``augment`` as ``_train_classifier``
    says); the contrastive extractor
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
        return _train_contrastive(dataset, out, data_dir, steps, seed, quiet, picture_options, holdout_groups)
    options = {"label_depth": label_depth, "min_per_class": min_per_class, "augment": augment,
               "holdout_groups": holdout_groups, "max_epochs": max_epochs}
    return _train_classifier(dataset, out, data_dir, epochs, seed, quiet, picture_options, options)


def _classifier_flags(options: dict) -> str:
    return ((f" --label-depth {options['label_depth']}" if options["label_depth"] != LABEL_DEPTH else "")
            + (f" --min-per-class {options['min_per_class']}" if options["min_per_class"] != MIN_PER_CLASS else "")
            + ("" if options["augment"] else " --no-augment")
            + (f" --max-epochs {options['max_epochs']}" if options["max_epochs"] != MAX_EPOCHS else "")
            + (f" --holdout-groups {options['holdout_groups']}" if options["holdout_groups"] != "picture" else ""))


def _picture_flags(image_size: int | None, fit: str, alpha: str) -> str:
    return ((f" --image-size {image_size}" if image_size else "") + (f" --fit {fit}" if fit != "crop" else "")
            + (f" --alpha {alpha}" if alpha != "white" else ""))


def _train_contrastive(dataset: str, out: str | Path | None, data_dir: str | None, steps: int | None, seed: int,
                       quiet: bool, picture_options: dict, holdout_groups: str) -> tuple[Path, dict]:
    from gankit.metrics.contrastive import STEPS
    from gankit.metrics.train_contrastive import train_contrastive_evaluator

    out = Path(out).expanduser() if out is not None else default_output(dataset, "contrastive")
    steps = STEPS if steps is None else steps
    train = open_dataset(dataset, data_dir=data_dir, split="train", **picture_options)
    groups = group_keys(dataset, train, holdout_groups, picture_options)
    command = (f"gankit train-evaluator --dataset {dataset} --self-supervised --out {out} --steps {steps} "
               f"--seed {seed}" + (f" --data-dir {data_dir}" if data_dir else "") + _picture_flags(**picture_options)
               + (f" --holdout-groups {holdout_groups}" if groups is not None else ""))
    return train_contrastive_evaluator(train, dataset, out, command=command, steps=steps, seed=seed, quiet=quiet,
                                       picture_options=picture_options, groups=groups, groups_rule=holdout_groups)


def _train_classifier(dataset: str, out: str | Path | None, data_dir: str | None, epochs: int | None, seed: int,
                      quiet: bool, picture_options: dict, options: dict) -> tuple[Path, dict]:
    """Train the evaluation classifier on ``dataset``'s train split, test it, save it to ``out``.

    A source without a test split (mnist-5k, an image folder, an array file) is split 80/20
    with a fixed seed (by whole groups with ``holdout_groups``); the meta says so. An image
    folder's labels come from ``label_depth`` folder levels ("auto": as deep as each class keeps
    ``min_per_class`` pictures). ``augment`` moves, zooms, mirrors and colour-jitters the training
    pictures. Prints the test accuracy and where the file went.
    """
    out = Path(out).expanduser() if out is not None else default_output(dataset)
    extra: dict = {}
    train, test, train_text, test_text = open_train_test(
        dataset, data_dir, label_depth=options["label_depth"], min_per_class=options["min_per_class"],
        holdout_groups=options["holdout_groups"], extra=extra, **picture_options)
    if train.image_shape[0] == 4:  # train_classifier flattens it; the meta says so
        train_text += " (RGBA, composited onto white: the classifier sees RGB)"
    if not quiet:
        print(f"training the evaluation classifier on {train_text}; testing on {test_text}")
    start = time.perf_counter()
    record: dict = {}
    model, test_accuracy = train_classifier(train, test, epochs=epochs, seed=seed, quiet=quiet,
                                            augment=options["augment"], max_epochs=options["max_epochs"],
                                            record=record)
    seconds = time.perf_counter() - start
    training = {"augmented": bool(options["augment"]), **record,
                "stopping": (f"early: at most {options['max_epochs']} passes, stopping {PATIENCE} passes after the best held-out "
                             "accuracy, whose weights are kept" if epochs is None else f"fixed: {epochs} passes")}
    class_names = train.class_names or [str(i) for i in range(model.num_classes)]
    meta = {
        "dataset": train.name,
        "train": train_text,
        "test": test_text,
        "class_names": list(class_names),
        "test_accuracy": float(test_accuracy),
        "epochs": int(record["best_epoch"] if epochs is None else epochs),
        "training": training,
        **extra,
        "seed": int(seed),
        "train_seconds": round(seconds, 1),
        # how its pictures were read: `gankit eval IMAGES` reads the reference the same way
        "image_size": int(picture_options.get("image_size") or train.image_shape[-1]),
        "fit": str(picture_options.get("fit") or "crop"),
        "alpha": str(picture_options.get("alpha") or "white"),
        "gankit_version": gankit.__version__,
        "torch_version": str(torch.__version__),
        "command": (f"gankit train-evaluator --dataset {dataset} --out {out}"
                    + (f" --epochs {epochs}" if epochs is not None else "") + f" --seed {seed}"
                    + _picture_flags(**picture_options) + _classifier_flags(options)),
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

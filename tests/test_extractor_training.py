"""The stronger extractors' training: labels from deeper folders, held-out splits by whole groups,
augmentation in training only, early stopping by held-out accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data import ImageSet
from gankit.data.folder_labels import labels_at_depth
from gankit.data.name_groups import picture_groups
from gankit.errors import UserError
from gankit.metrics import classifier_augment
from gankit.metrics.classifier import train_classifier
from gankit.metrics.evaluator_split import holdout_indices

# A tree as openclipart's: animals holds two big sub-folders, a small one and loose pictures;
# food holds one big sub-folder and too small a rest; shapes holds only loose pictures.
TREE = {"animals/birds": 5, "animals/mammals": 6, "animals/fish": 1, "animals": 3,
        "food/fruit": 5, "food": 1, "shapes": 4}


def tree_names() -> list[str]:
    return [f"{folder}/p{i}.png" for folder, n in TREE.items() for i in range(n)]


def classes_of(names: list[str], depth, min_per_class: int = 4) -> dict[str, str]:
    labels, class_names = labels_at_depth(names, depth, min_per_class)
    return {name: class_names[label] for name, label in zip(names, labels)}


def test_label_depth_auto_splits_a_folder_only_where_every_class_keeps_enough_pictures():
    got = classes_of(tree_names(), "auto", min_per_class=4)
    # animals: birds and mammals are big enough; fish (1) and the 3 loose ones make a rest of 4
    assert got["animals/birds/p0.png"] == "animals/birds" and got["animals/mammals/p5.png"] == "animals/mammals"
    assert got["animals/fish/p0.png"] == got["animals/p2.png"] == "animals/(rest)"
    # food: its rest (1 picture) is too small, so food stays one class
    assert got["food/fruit/p0.png"] == got["food/p0.png"] == "food"
    assert got["shapes/p3.png"] == "shapes"
    assert sorted(set(got.values())) == ["animals/(rest)", "animals/birds", "animals/mammals", "food", "shapes"]


def test_label_depth_n_takes_that_many_folder_levels_and_1_is_the_top_level():
    names = tree_names()
    assert set(classes_of(names, 1).values()) == {"animals", "food", "shapes"}
    two = classes_of(names, 2)
    assert two["animals/fish/p0.png"] == "animals/fish" and two["animals/p0.png"] == "animals"
    assert len(set(two.values())) == 7
    with pytest.raises(UserError, match="--label-depth"):
        labels_at_depth(names, 0)


def sprite_names() -> list[str]:
    """Sixty units' frames, as wesnoth names them (unit.png, unit-attack-1.png, unit/unit-die-2.png)."""
    names = []
    for u in range(60):
        faction, unit = f"faction{u % 3}", f"unit{chr(97 + u % 26)}{u}"
        names += [f"{faction}/{unit}.png", f"{faction}/{unit}-attack-1.png", f"{faction}/{unit}-attack-2.png",
                  f"{faction}/{unit}-defend.png", f"{faction}/{unit}/{unit}-die-{u % 4}.png"][: 2 + u % 4]
    return names


def test_a_group_wise_held_out_split_never_puts_one_units_frames_on_both_sides():
    names = sprite_names()
    groups = picture_groups(names, "name")
    assert len(set(groups)) == 60  # each unit one group, whatever its frame's suffix or sub-folder
    kept, held = holdout_indices(len(names), groups=groups)
    kept_groups, held_groups = {groups[i] for i in kept.tolist()}, {groups[i] for i in held.tolist()}
    assert not kept_groups & held_groups
    assert sorted(kept.tolist() + held.tolist()) == list(range(len(names)))
    assert 0.2 <= len(held) / len(names) < 0.3
    # the plain split (every picture its own group) is the one older files were made with
    plain_kept, plain_held = holdout_indices(len(names))
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(0))
    assert plain_held.tolist() == sorted(order[: round(len(names) * 0.2)].tolist())
    assert {groups[i] for i in plain_kept.tolist()} & {groups[i] for i in plain_held.tolist()}


def learnable(n: int, seed: int = 0, random_labels: bool = False) -> ImageSet:
    """Bright pictures are class 1, dark ones class 0 (or labels at random)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    level = (40 + 170 * labels).view(n, 1, 1, 1)
    images = (level + torch.randint(-30, 30, (n, 3, 16, 16), generator=g)).clamp(0, 255).to(torch.uint8)
    if random_labels:
        labels = torch.randint(0, 2, (n,), generator=g)
    return ImageSet(images=images, labels=labels, name="synthetic", source="synthetic", class_names=["0", "1"])


def test_augmentation_is_applied_to_training_batches_only(monkeypatch):
    calls = []
    real = classifier_augment.augment

    def counted(x, generator):
        calls.append(torch.is_grad_enabled())  # evaluation (accuracy, features) runs without gradients
        out = real(x, generator)
        assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1 and not torch.equal(out, x)
        return out

    monkeypatch.setattr(classifier_augment, "augment", counted)
    train, test = learnable(96), learnable(40, seed=1)
    train_classifier(train, test, epochs=2, batch_size=32, quiet=True, augment=True)
    assert len(calls) == 2 * 3 and all(calls)  # every training batch of both passes, nothing else
    calls.clear()
    train_classifier(train, test, epochs=2, batch_size=32, quiet=True, augment=False)
    assert calls == []


def test_early_stopping_stops_when_held_out_accuracy_stops_rising_and_keeps_the_best_pass():
    record: dict = {}
    _, accuracy = train_classifier(learnable(64, random_labels=True), learnable(40, seed=1, random_labels=True),
                                       epochs=None, max_epochs=30, patience=2, batch_size=32, quiet=True,
                                       record=record)
    history = record["accuracy_per_epoch"]
    assert record["epochs_run"] == len(history) < 30
    assert record["epochs_run"] == record["best_epoch"] + 2  # two passes without a new best, then stop
    assert max(history) == history[record["best_epoch"] - 1] == pytest.approx(accuracy, abs=1e-4)
    assert max(history[record["best_epoch"]:]) <= history[record["best_epoch"] - 1]


def write_sprites(root, names):
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        colour = (60 * (int(name[7]) + 1), 0, 0) if name.startswith("faction") else (0, 0, 0)
        pixels = np.clip(np.full((16, 16, 3), colour) + rng.integers(0, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path)


def test_train_evaluator_records_labels_split_and_training_in_the_file(tmp_path):
    from gankit.cli import main
    from gankit.metrics.classifier import load_classifier

    names = sprite_names()
    write_sprites(tmp_path / "units", names)
    out = tmp_path / "units.pt"
    assert main(["train-evaluator", "--dataset", str(tmp_path / "units"), "--out", str(out), "--epochs", "2",
                 "--label-depth", "1", "--holdout-groups", "name", "--quiet"]) == 0
    meta = load_classifier(out)[1]
    assert meta["class_names"] == ["faction0", "faction1", "faction2"]
    assert meta["holdout"]["groups_rule"] == "name" and meta["holdout"]["groups"] == 60
    assert meta["training"]["augmented"] and meta["training"]["epochs_run"] == 2
    assert "--holdout-groups name" in meta["command"] and "--label-depth 1" in meta["command"]
    json.dumps(meta)  # plain values only
    assert main(["train-evaluator", "--dataset", str(tmp_path / "units"), "--out", str(tmp_path / "bad.pt"),
                 "--label-depth", "zero"]) == 2
    assert not (tmp_path / "bad.pt").exists()


def test_eval_finds_a_group_wise_split_again_from_the_self_supervised_file(tmp_path, capsys):
    from gankit.cli import main
    from gankit.metrics.contrastive import load_contrastive

    write_sprites(tmp_path / "units", sprite_names())
    out = tmp_path / "units-ss.pt"
    assert main(["train-evaluator", "--dataset", str(tmp_path / "units"), "--self-supervised", "--steps", "2",
                 "--holdout-groups", "name", "--out", str(out), "--quiet"]) == 0
    holdout = load_contrastive(out)[1]["holdout"]
    assert holdout["groups_rule"] == "name" and holdout["groups"] == 60
    fake = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8).numpy()
    np.savez(tmp_path / "fake.npz", images=fake)
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "fake.npz"), "--dataset", str(tmp_path / "units"), "--evaluator", str(out),
                 "-n", "40", "--metrics", "fid"]) == 0
    assert "held out from the extractor's training" in capsys.readouterr().out

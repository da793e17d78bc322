"""The self-supervised (contrastive) extractor: views, loss, training, file, and `gankit eval` with it.

Synthetic pictures stand in for a folder without labels: coloured discs (set A) and stripes (set
B), 16 px so that training takes seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.data import ImageSet
from gankit.errors import UserError
from gankit.metrics import scores
from gankit.metrics.classifier import EvalClassifier, load_classifier, save_classifier
from gankit.metrics.contrastive import (
    ContrastiveEncoder,
    ContrastiveExtractor,
    load_contrastive,
    nt_xent,
    save_contrastive,
    train_contrastive,
)
from gankit.metrics.contrastive_views import random_view
from gankit.metrics.evaluator_split import holdout_indices

SIDE = 16


def discs(n: int, seed: int, side: int = SIDE) -> torch.Tensor:
    """n uint8 RGB pictures [n, 3, side, side]: a disc of a random colour on a pale background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    out = np.empty((n, side, side, 3), np.uint8)
    for k in range(n):
        cy, cx = rng.uniform(side * 0.3, side * 0.7, 2)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(side * 0.2, side * 0.35) ** 2
        out[k] = rng.integers(200, 256, 3)
        out[k][inside] = rng.integers(0, 160, 3)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def stripes(n: int, seed: int, side: int = SIDE) -> torch.Tensor:
    """n uint8 RGB pictures: stripes of a random angle, period and pair of colours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    out = np.empty((n, side, side, 3), np.uint8)
    for k in range(n):
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 6)
        on = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0
        out[k] = rng.integers(0, 256, 3)
        out[k][on] = rng.integers(0, 256, 3)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def image_set(images: torch.Tensor, name: str = "shapes") -> ImageSet:
    return ImageSet(images=images, labels=None, name=name, source=name)


@pytest.fixture(scope="module")
def trained():
    """30 steps of 48 on 96 discs + 96 stripes: a few seconds."""
    data = image_set(torch.cat([discs(96, 0), stripes(96, 1)]))
    model, losses = train_contrastive(data, steps=30, batch_size=48, seed=0, quiet=True, log_every=10)
    return model, losses


# ---------------------------------------------------------------- views and loss


def test_views_are_random_seeded_and_in_range():
    images = discs(8, 0)
    a = random_view(images, torch.Generator().manual_seed(1))
    b = random_view(images, torch.Generator().manual_seed(1))
    c = random_view(images, torch.Generator().manual_seed(2))
    assert a.shape == (8, 3, SIDE, SIDE) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1
    grey = random_view(images[:, :1], torch.Generator().manual_seed(1))  # grey pictures keep 1 channel
    assert grey.shape == (8, 1, SIDE, SIDE)


def test_nt_xent_is_low_for_matching_views_and_high_for_random_ones():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(32, 64, generator=g)
    matched = nt_xent(z, z + 0.01 * torch.randn(32, 64, generator=g), temperature=0.2)
    unrelated = nt_xent(z, torch.randn(32, 64, generator=g), temperature=0.2)
    assert matched < 0.5 and unrelated > np.log(63) - 0.5  # log(2N - 1): the loss of a guess


# ---------------------------------------------------------------- training and features


def test_training_lowers_the_loss_clearly(trained):
    _, losses = trained
    assert len(losses) == 3
    # log(2 * 48 - 1) = 4.55 is the loss of a guess; 30 steps take it about 0.7 lower (seed 0)
    assert losses[-1] < losses[0] - 0.3, losses


def test_features_separate_discs_from_stripes(trained):
    model, _ = trained
    extract = ContrastiveExtractor(model, {"dataset": "shapes"})
    a1, _ = extract(discs(150, 10))
    a2, _ = extract(discs(150, 11))
    b, _ = extract(stripes(150, 12))
    same, different = scores.fid(a1, a2), scores.fid(a1, b)
    assert different > 5 * same and different > same + 10, (same, different)


def test_training_is_repeatable_and_leaves_the_global_rng_alone():
    data = image_set(discs(16, 0))
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    one, _ = train_contrastive(data, steps=2, batch_size=8, seed=5, quiet=True)
    assert torch.equal(torch.rand(1), before)
    two, _ = train_contrastive(data, steps=2, batch_size=8, seed=5, quiet=True)
    for (k, v), w in zip(one.state_dict().items(), two.state_dict().values()):
        assert torch.equal(v, w), k


# ---------------------------------------------------------------- the file


def test_save_and_load_round_trip(trained, tmp_path):
    model, _ = trained
    save_contrastive(model, tmp_path / "c.pt", {"dataset": "shapes", "quality": {"floor_fid": 1.5}})
    loaded, meta = load_contrastive(tmp_path / "c.pt")
    assert meta["kind"] == "contrastive" and meta["quality"]["floor_fid"] == 1.5
    assert meta["image_shape"] == [3, SIDE, SIDE] and meta["feature_dim"] == 128
    images = stripes(20, 3)
    original, _ = ContrastiveExtractor(model, meta)(images)
    again, logits = ContrastiveExtractor.load(tmp_path / "c.pt")(images)
    assert logits is None and np.array_equal(original, again)


def test_a_classifier_file_is_not_a_contrastive_one_and_back(tmp_path):
    save_classifier(EvalClassifier((3, SIDE, SIDE), 2), tmp_path / "clf.pt", {"dataset": "x"})
    with pytest.raises(UserError, match="not a gankit contrastive extractor.*--self-supervised"):
        load_contrastive(tmp_path / "clf.pt")
    save_contrastive(ContrastiveEncoder((3, SIDE, SIDE)), tmp_path / "ssl.pt", {"dataset": "x"})
    with pytest.raises(UserError, match="not a gankit evaluation classifier"):
        load_classifier(tmp_path / "ssl.pt")
    with pytest.raises(UserError, match="no such evaluator file"):
        load_contrastive(tmp_path / "missing.pt")


# ---------------------------------------------------------------- the command line


def write_folder(root, images: torch.Tensor) -> None:
    """A flat folder of PNGs: pictures without labels."""
    root.mkdir(parents=True)
    for k, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(image).save(root / f"{k:03d}.png")


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    """A folder of 60 discs and 60 stripes with no labels, and an extractor trained on it by
    `gankit train-evaluator` without --self-supervised (it must choose it by itself)."""
    root = tmp_path_factory.mktemp("ssl")
    folder, out = root / "shapes", root / "shapes-ssl.pt"
    write_folder(folder, torch.cat([discs(60, 20), stripes(60, 21)]))
    return folder, out


def test_train_evaluator_picks_self_supervised_for_pictures_without_labels(unlabelled, capsys):
    folder, out = unlabelled
    assert main(["train-evaluator", "--dataset", str(folder), "--out", str(out), "--steps", "3", "-q"]) == 0
    said = capsys.readouterr().out
    assert "no labels" in said and "self-supervised" in said and "quality check: floor FID" in said
    _, meta = load_contrastive(out)
    assert meta["kind"] == "contrastive" and meta["dataset"] == str(folder)
    assert meta["holdout"] == {"fraction": 0.2, "seed": 0, "pictures": 120}
    assert meta["image_size"] == SIDE and meta["fit"] == "crop" and meta["alpha"] == "white"
    assert "--self-supervised" in meta["command"] and "--steps 3" in meta["command"]
    quality = meta["quality"]
    assert 0 <= quality["floor_fid"] < quality["blurred_fid"] and "knn_accuracy" not in quality


def test_eval_with_the_contrastive_file_names_it_and_skips_class_metrics(unlabelled, tmp_path, capsys):
    folder, out = unlabelled
    if not out.exists():
        assert main(["train-evaluator", "--dataset", str(folder), "--out", str(out), "--steps", "3", "-q"]) == 0
    np.savez(tmp_path / "fake.npz", images=stripes(40, 30).permute(0, 2, 3, 1).numpy())
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "fake.npz"), "--dataset", str(folder), "--evaluator", str(out), "-n", "40",
                 "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert f"contrastive CNN trained on {folder}" in printed
    assert "classes skipped" in printed and "no class predictions" in printed
    assert "never with Inception FIDs from papers" in printed
    result = json.loads((tmp_path / "e.json").read_text())
    protocol = result["protocol"]
    assert protocol["extractor"].startswith(f"contrastive CNN trained on {folder}")
    assert "scale" in protocol and "classes" in protocol["skipped"]
    assert "classes_missing" not in result["metrics"] and result["metrics"]["fid"] > 0
    # The floor is the 24 pictures held out from the extractor's training; the reference the other 96.
    assert protocol["floor"] == f"24 {folder} images held out from the extractor's training"
    assert protocol["reference"].startswith(f"96 {folder} images the extractor trained on")
    kept, held = holdout_indices(120)
    assert len(held) == 24 and len(kept) == 96


def test_train_evaluator_flag_mistakes_exit_2_and_write_nothing(unlabelled, tmp_path, capsys):
    folder, _ = unlabelled
    out = tmp_path / "x.pt"
    assert main(["train-evaluator", "--dataset", str(folder), "--out", str(out), "--epochs", "2"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert main(["train-evaluator", "--dataset", str(folder), "--self-supervised", "--out", str(out),
                 "--epochs", "2"]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert main(["train-evaluator", "--dataset", "mnist-5k", "--out", str(out), "--steps", "2"]) == 2
    assert "--self-supervised" in capsys.readouterr().err
    assert not out.exists()


def test_self_supervised_on_labelled_pictures_checks_itself_by_nearest_neighbours(tmp_path, capsys):
    from gankit.data import open_dataset

    digits = open_dataset("mnist-5k")
    pick = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))[:200]
    np.savez(tmp_path / "digits.npz", images=digits.images[pick].numpy(), labels=digits.labels[pick].numpy())
    out = tmp_path / "digits-ssl.pt"
    assert main(["train-evaluator", "--dataset", str(tmp_path / "digits.npz"), "--self-supervised", "--steps", "3",
                 "--out", str(out), "-q"]) == 0
    assert "5-NN class accuracy" in capsys.readouterr().out
    _, meta = load_contrastive(out)
    assert meta["image_shape"] == [1, 28, 28] and 0 <= meta["quality"]["knn_accuracy"] <= 1
    assert meta["holdout"]["pictures"] == 200 and meta["quality"]["pictures"] == [160, 40]

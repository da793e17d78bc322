"""Tests for the evaluation classifier: network, training, safe save/load, shipped weights, extractor."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.data import ImageSet, open_dataset
from gankit.errors import UserError
from gankit.images import to_float
from gankit.metrics import train_evaluator as te
from gankit.metrics.classifier import (
    ClassifierExtractor,
    EvalClassifier,
    load_classifier,
    save_classifier,
    shipped_classifier,
    train_classifier,
)

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return open_dataset("mnist-5k")


def subset(ds: ImageSet, start: int, stop: int) -> ImageSet:
    return dataclasses.replace(ds, images=ds.images[start:stop], labels=ds.labels[start:stop])


def tiny_run(digits: ImageSet, seed: int = 0) -> tuple[EvalClassifier, float]:
    """2 epochs on 600 digits, tested on the next 400: about a second."""
    return train_classifier(subset(digits, 0, 600), subset(digits, 600, 1000), epochs=2, batch_size=32,
                            seed=seed, quiet=True)


@pytest.fixture(scope="module")
def tiny(digits) -> tuple[EvalClassifier, float]:
    return tiny_run(digits)


# ---------------------------------------------------------------- network


@pytest.mark.parametrize("shape, classes", [((1, 28, 28), 10), ((3, 32, 32), 7)])
def test_features_and_logits_shapes(shape, classes):
    model = EvalClassifier(shape, classes).eval()
    x = torch.rand(5, *shape) * 2 - 1
    features, logits = model.features_and_logits(x)
    assert features.shape == (5, 128) and logits.shape == (5, classes)
    assert (features < 0).any()  # taken before the ReLU
    assert torch.equal(model(x), logits)
    assert torch.equal(model.head(features), logits)


# ---------------------------------------------------------------- training


def test_tiny_training_beats_chance_by_far(tiny):
    model, acc = tiny
    assert acc > 0.5  # chance is 0.1
    assert not model.training


def test_training_is_deterministic_for_a_seed_and_leaves_global_rng_alone(digits, tiny):
    before = torch.random.get_rng_state()
    again, acc = tiny_run(digits, seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)
    first = tiny[0].state_dict()
    assert acc == tiny[1]
    assert all(torch.equal(first[k], v) for k, v in again.state_dict().items())
    other = tiny_run(digits, seed=1)[0].state_dict()
    assert not all(torch.equal(first[k], v) for k, v in other.items())


def test_training_needs_labels(digits):
    unlabelled = dataclasses.replace(subset(digits, 0, 10), labels=None)
    with pytest.raises(UserError, match="no labels"):
        train_classifier(unlabelled, subset(digits, 10, 20), epochs=1, quiet=True)


# ---------------------------------------------------------------- save and load


def test_save_load_round_trip_gives_identical_outputs(tiny, digits, tmp_path):
    model, acc = tiny
    path = tmp_path / "sub" / "clf.pt"
    save_classifier(model, path, {"dataset": "mnist-5k", "test_accuracy": acc, "class_names": ["a", "b"]})
    loaded, meta = load_classifier(path)
    x = to_float(digits.images[:50])
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(loaded.features_and_logits(x)[0], model.features_and_logits(x)[0])
    assert meta["test_accuracy"] == acc and meta["image_shape"] == [1, 28, 28] and meta["num_classes"] == 10
    assert [p.name for p in path.parent.iterdir()] == ["clf.pt"]  # no temporary file left behind


def test_save_refuses_meta_that_would_need_pickled_classes(tiny, tmp_path):
    with pytest.raises(ValueError, match="Path"):
        save_classifier(tiny[0], tmp_path / "clf.pt", {"dataset": Path("x")})
    assert not (tmp_path / "clf.pt").exists()


class _Exploit:
    """Unpickling this runs a shell command: what a malicious weights file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "meta": _Exploit(marker)}, path)
    with pytest.raises(UserError, match="evil.pt"):
        load_classifier(path)
    with pytest.raises(UserError, match="evil.pt"):
        ClassifierExtractor(str(path))
    assert not marker.exists()


def test_missing_or_foreign_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="nothing.pt: no such"):
        load_classifier(tmp_path / "nothing.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="other.pt: not a gankit evaluation classifier"):
        load_classifier(tmp_path / "other.pt")


# ---------------------------------------------------------------- extractor


def test_extractor_converts_rgb_and_size(tiny, digits, tmp_path):
    path = tmp_path / "clf.pt"
    save_classifier(tiny[0], path, {"dataset": "mnist-5k"})
    ext = ClassifierExtractor(str(path))
    assert ext.name == "classifier:mnist-5k" and ext.feature_dim == 128 and ext.num_classes == 10

    grey = digits.images[:20]
    features, logits = ext(grey, batch_size=7)
    assert features.shape == (20, 128) and logits.shape == (20, 10)
    assert features.dtype == np.float64 and logits.dtype == np.float64
    # Grey repeated to RGB converts back exactly (the luma weights sum to 1).
    rgb_features, _ = ext(grey.expand(-1, 3, -1, -1), batch_size=7)
    np.testing.assert_array_equal(rgb_features, features)

    big = torch.randint(0, 256, (9, 3, 32, 32), dtype=torch.uint8)
    features, logits = ext(big)
    assert features.shape == (9, 128) and logits.shape == (9, 10) and np.isfinite(logits).all()


def test_extractor_for_unknown_dataset_says_how_to_train_one():
    with pytest.raises(UserError, match="gankit train-evaluator --dataset cifar10 --out FILE.*--evaluator FILE"):
        ClassifierExtractor("cifar10")


# ---------------------------------------------------------------- train_evaluator


def test_holdout_split_is_fixed_and_disjoint(digits):
    small = subset(digits, 0, 100)
    train, test = te.split_holdout(small)
    assert (len(train), len(test)) == (80, 20)
    again_train, again_test = te.split_holdout(small)
    assert torch.equal(test.images, again_test.images)
    rows = {tuple(im.flatten().tolist()) for im in train.images}
    assert not any(tuple(im.flatten().tolist()) in rows for im in test.images)


def test_train_evaluator_writes_a_loadable_file(monkeypatch, tmp_path, capsys):
    real_open = te.open_dataset

    def small_open(*args, **kwargs):  # the real mnist-5k, cut to 500 images to keep this quick
        ds = real_open(*args, **kwargs)
        return subset(ds, 0, 500)

    monkeypatch.setattr(te, "open_dataset", small_open)
    path, meta = te.train_evaluator("mnist-5k", tmp_path / "d.pt", epochs=1, quiet=True)
    assert path == tmp_path / "d.pt" and path.is_file()
    assert "held-out 100 of the 500" in meta["test"] and meta["dataset"] == "mnist-5k"
    assert meta["epochs"] == 1 and "gankit train-evaluator --dataset mnist-5k" in meta["command"]
    assert load_classifier(path)[1] == meta
    assert f"wrote {path}" in capsys.readouterr().out


def test_default_output_is_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("GANKIT_CACHE", raising=False)
    assert te.default_output("fashion-mnist") == Path.home() / ".cache/gankit/weights/fashion-mnist-classifier.pt"
    assert te.default_output("./my images/").name == "my-images-classifier.pt"
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path))
    assert te.default_output("mnist-5k") == tmp_path / "weights" / "mnist-5k-classifier.pt"


# ---------------------------------------------------------------- shipped weights


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "mnist-5k", "Fashion_MNIST"])
def test_shipped_weights_exist_and_load(name):
    path = shipped_classifier(name)
    assert path is not None and path.is_file() and path.stat().st_size < 1_000_000
    model, meta = load_classifier(path)
    assert meta["test_accuracy"] >= 0.9
    assert meta["image_shape"] == [1, 28, 28] and meta["num_classes"] == 10 and len(meta["class_names"]) == 10
    assert shipped_classifier("cifar10") is None


def test_shipped_mnist_classifier_reads_real_digits(digits):
    ext = ClassifierExtractor("mnist")
    assert ext.name == "classifier:mnist-5k"
    features, logits = ext(digits.images[:500])
    assert (logits.argmax(1) == digits.labels[:500].numpy()).mean() >= 0.9
    # Every feature varies over real images, so their covariance (for FID) has full rank.
    assert np.linalg.matrix_rank(np.cov(features, rowvar=False)) == ext.feature_dim


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason=f"Fashion-MNIST is not installed in {REAL_FASHION}")
def test_shipped_fashion_classifier_reads_real_test_images():
    test = open_dataset("fashion-mnist", split="test", download=False)
    ext = ClassifierExtractor("fashion-mnist")
    assert ext.class_names == test.class_names
    features, logits = ext(test.images[:500])
    assert (logits.argmax(1) == test.labels[:500].numpy()).mean() >= 0.88
    assert np.linalg.matrix_rank(np.cov(features, rowvar=False)) == ext.feature_dim

"""D's overfitting gap (gankit/training/overfitting_probe.py) and `--conditioning auto`: the probe measures what it says,
leaves D's statistics and the training RNG alone, and a run logs it from a test split or --holdout."""

import json

import numpy as np
import pytest
import torch
from test_data import make_mnist_files
from test_train import TINY
from torch import nn

from gankit.cli import main
from gankit.data import ImageSet
from gankit.training.overfitting_probe import HeldOutProbe, split_holdout


def image_set(values, labels=None):
    images = torch.tensor(values, dtype=torch.uint8).reshape(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    return ImageSet(images=images, labels=None if labels is None else torch.tensor(labels), name="t", source="t")


class Brightness(nn.Module):
    """Calls an image real (logit > 0) when its mean pixel is above 0; BatchNorm and dropout inside
    only so that the probe must leave their statistics and randomness alone."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(1)
        self.drop = nn.Dropout(0.5)
        self.seen_labels = None

    def forward(self, x, y=None):
        self.seen_labels = y
        self.bn(x.mean((1, 2, 3))[:, None])  # updates running statistics in train mode
        self.drop(x)  # draws from the RNG in train mode
        return x.mean((1, 2, 3))


def test_split_holdout_is_a_seeded_partition_that_keeps_labels():
    data = image_set(range(100), labels=[i % 10 for i in range(100)])
    kept, held = split_holdout(data, 30, seed=0)
    assert (len(kept), len(held)) == (70, 30)
    values = sorted(kept.images[:, 0, 0, 0].tolist() + held.images[:, 0, 0, 0].tolist())
    assert values == list(range(100))  # disjoint and complete
    assert torch.equal(held.labels, held.images[:, 0, 0, 0].long() % 10)  # labels travel with images
    again_kept, again_held = split_holdout(data, 30, seed=0)
    assert torch.equal(again_held.images, held.images)
    assert not torch.equal(split_holdout(data, 30, seed=1)[1].images, held.images)


def test_the_gap_is_the_share_of_training_images_called_real_minus_held_out_ones():
    d = Brightness().train()
    bright, dark = image_set([250] * 300), image_set([5] * 40 + [250] * 10)
    out = HeldOutProbe(bright, dark, seed=0, device=torch.device("cpu"), conditional=False).measure(d, 0.0)
    assert out["d_acc_train_probe"] == 1.0
    assert out["d_acc_heldout"] == pytest.approx(10 / 50)  # 50 held-out images: the probe uses all of them
    assert out["d_heldout_gap"] == pytest.approx(0.8)
    same = HeldOutProbe(bright, bright, seed=0, device=torch.device("cpu"), conditional=False).measure(d, 0.0)
    assert same["d_heldout_gap"] == 0.0


def test_the_probe_leaves_batchnorm_statistics_and_the_rng_alone_and_passes_labels():
    d = Brightness().train()
    data = image_set(range(0, 200, 2), labels=[i % 10 for i in range(100)])
    probe = HeldOutProbe(data, data, seed=0, device=torch.device("cpu"), conditional=True)
    before = {k: v.clone() for k, v in d.state_dict().items()}
    rng = torch.get_rng_state()
    probe.measure(d, 0.0)
    assert all(torch.equal(before[k], v) for k, v in d.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert d.seen_labels is not None and len(d.seen_labels) == 200
    HeldOutProbe(data, data, seed=0, device=torch.device("cpu"), conditional=False).measure(d, 0.0)
    assert d.seen_labels is None


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_with_holdout_trains_on_the_rest_and_logs_the_gap(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (300, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    run = tmp_path / "r"
    assert main(["train", "-q", "--out", str(run), *TINY, "--dataset", str(tmp_path / "x.npy"),
                 "--holdout", "100", "--steps", "4"]) == 0
    info = json.loads((run / "config.json").read_text())
    assert info["dataset"]["images"] == 200 and info["config"]["conditioning"] == "none"  # auto, no labels
    logged = [r for r in records(run) if "d_loss" in r]
    assert logged and all(-1 <= r["d_heldout_gap"] <= 1 for r in logged)
    assert all(r["d_heldout_gap"] == pytest.approx(r["d_acc_train_probe"] - r["d_acc_heldout"], abs=1e-3)
               for r in logged)


def test_a_dataset_with_a_test_split_probes_it_and_trains_on_all_training_images(tmp_path):
    make_mnist_files(tmp_path / "mnist", n_train=64, n_test=40)
    run = tmp_path / "r"
    assert main(["train", "-q", "--out", str(run), *TINY, "--dataset", "mnist", "--data-dir",
                 str(tmp_path / "mnist"), "--steps", "2"]) == 0
    info = json.loads((run / "config.json").read_text())
    assert info["dataset"]["images"] == 64 and info["config"]["conditioning"] == "projection"  # auto, labelled
    assert "d_heldout_gap" in [r for r in records(run) if "d_loss" in r][-1]


def test_holdout_as_large_as_the_data_is_refused_before_anything_is_written(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((50, 28, 28), dtype=np.uint8))
    run = tmp_path / "r"
    code = main(["train", "-q", "--out", str(run), *TINY, "--dataset", str(tmp_path / "x.npy"), "--holdout", "50"])
    assert code == 2 and "--holdout 50" in capsys.readouterr().err
    assert not run.exists()


def test_without_held_out_images_nothing_is_logged_for_the_gap(tmp_path):
    run = tmp_path / "r"
    assert main(["train", "-q", "--out", str(run), *TINY, "--steps", "2"]) == 0  # mnist-5k: no test split
    assert "d_heldout_gap" not in [r for r in records(run) if "d_loss" in r][-1]

"""CIFAR-10 through the command line, from the real archive's format: train, train-evaluator, eval.

tests/test_data.py reads the batches; this checks that the commands docs/guide.md gives for
CIFAR-10 work together on a file laid out as the real cifar-10-python.tar.gz is.
"""

from __future__ import annotations

import json
import pickle
import tarfile

import numpy as np
import pytest

from gankit.cli import main

CLASS_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def write_cifar_archive(directory, per_batch: int = 40, test: int = 60) -> None:
    """cifar-10-python.tar.gz as the real one: cifar-10-batches-py/data_batch_1..5, test_batch and
    batches.meta, each a dict pickled by Python 2 (protocol 2, bytes keys) with uint8 [N, 3072]
    rows (red plane, green, blue) under b"data" and a list of ints under b"labels"."""
    rng = np.random.default_rng(0)
    members = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": test}
    source = directory / "src" / "cifar-10-batches-py"
    source.mkdir(parents=True)
    for name, n in members.items():
        labels = [int(v) for v in np.arange(n) % 10]
        # Each class a colour, with noise: something for the classifier to learn.
        colour = np.array([[(37 * c) % 256, (91 * c) % 256, (151 * c) % 256] for c in labels], np.int64)
        data = np.repeat(colour, 1024, axis=1) + rng.integers(-40, 40, (n, 3072))
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data.clip(0, 255).astype(np.uint8),
                 b"filenames": [f"{k}.png".encode() for k in range(n)]}
        (source / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"num_cases_per_batch": per_batch, b"label_names": CLASS_NAMES, b"num_vis": 3072}
    (source / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    with tarfile.open(directory / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    for f in source.iterdir():  # only the archive stays, as a user who downloaded it has
        f.unlink()
    source.rmdir()
    (directory / "src").rmdir()


def test_cifar10_train_train_evaluator_and_eval_from_the_archive(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_cifar_archive(data)
    run, evaluator = tmp_path / "runs" / "cifar", tmp_path / "cifar10-classifier.pt"
    assert main(["train", "-q", "--dataset", "cifar10", "--data-dir", str(data), "--out", str(run), "--steps", "3",
                 "--width", "8", "--batch-size", "16", "--sample-grid", "4", "--log-every", "1",
                 "--checkpoint-every", "3", "--tensorboard", "off"]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["dataset"] == "cifar10"
    assert main(["train-evaluator", "--dataset", "cifar10", "--data-dir", str(data), "--out", str(evaluator),
                 "--epochs", "2", "-q"]) == 0
    said = capsys.readouterr().out
    assert "cifar10 test split (60 images)" in said
    # a folder depth means nothing to a set with its own labels and split: refused, nothing written
    other = tmp_path / "deeper.pt"
    assert main(["train-evaluator", "--dataset", "cifar10", "--data-dir", str(data), "--out", str(other),
                 "--epochs", "1", "--label-depth", "2", "-q"]) == 2
    assert "--label-depth" in capsys.readouterr().err and not other.exists()
    assert main(["eval", str(run), "--evaluator", str(evaluator), "-n", "50"]) == 0
    printed = capsys.readouterr().out
    assert "classifier:cifar10 (128-d)" in printed and "50 generated images vs 60 cifar10 test images" in printed
    assert "real data: 50 cifar10 train images" in printed
    result = json.loads((run / "eval.json").read_text())
    assert result["metrics"]["fid"] > result["floor"]["fid"]  # 3 steps of training vs real pictures
    for scored in (result["metrics"], result["floor"]):  # a class is missing below a tenth of its share
        share = scored["class_share"]
        assert len(share) == 10 and sum(share) == pytest.approx(1) and all(abs(s * 50 - round(s * 50)) < 1e-9 for s in share)
        assert scored["classes_missing"] == sum(s < 0.1 / 10 for s in share)
    # As papers score CIFAR-10: against the training images, the floor from the test images.
    assert main(["eval", str(run), "--evaluator", str(evaluator), "-n", "50", "--metrics", "fid",
                 "--reference", "train"]) == 0
    printed = capsys.readouterr().out
    assert "50 generated images vs 200 cifar10 train images" in printed
    assert "real data: 50 cifar10 test images vs the same reference" in printed


def test_reference_train_needs_a_test_split(tmp_path, capsys):
    np.savez(tmp_path / "x.npz", images=np.zeros((4, 28, 28), np.uint8))
    assert main(["eval", str(tmp_path / "x.npz"), "--dataset", "mnist-5k", "--reference", "train"]) == 2
    assert "--reference train: mnist-5k has no test split" in capsys.readouterr().err

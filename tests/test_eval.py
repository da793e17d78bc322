"""`gankit eval` and evaluation during training, end to end on the embedded digits."""

import json

import numpy as np
import pytest

from gankit.cli import main
from gankit.data import open_dataset
from gankit.metrics.reference import cache_dir
from gankit.run.checkpoint import load

TINY = ["--width", "8", "--batch-size", "16", "--log-every", "2", "--sample-every", "50",
        "--checkpoint-every", "50", "--sample-grid", "4"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    assert main(["train", "-q", "--out", str(out), *TINY, "--steps", "4", "--eval-every", "2", "--eval-n", "64"]) == 0
    return out


def test_eval_every_logs_metrics_and_keeps_best_checkpoint(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval_n" in r]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:  # real digits beat a 4-step generator on every score
        assert r["floor_fid"] < r["fid"] and r["floor_kid"] < r["kid"] and r["coverage"] < r["floor_coverage"]
    best = load(run_dir / "checkpoints" / "best.pt")  # the checkpoint of the lowest FID, with its scores
    lowest = min(evals, key=lambda r: r["fid"])
    assert best["progress"]["step"] == lowest["step"] and best["eval"]["metrics"]["fid"] == pytest.approx(lowest["fid"])
    assert (run_dir / "eval.png").exists()


def test_eval_run_prints_table_and_writes_eval_json(run_dir, capsys):
    assert main(["eval", str(run_dir), "-n", "200"]) == 0
    out = capsys.readouterr().out
    assert "FID" in out and "real data" in out and "classifier:" in out and "200 generated images" in out
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["protocol"]["generated"] == 200
    assert "mnist-5k" in result["protocol"]["reference"]
    for key in ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "classes_missing"):
        assert key in result["metrics"], key
        assert key in result["floor"], key
    assert result["floor"]["fid"] < result["metrics"]["fid"]


def test_real_images_scored_as_a_bare_set_sit_at_the_floor(tmp_path, capsys):
    digits = open_dataset("mnist-5k")
    # every 5th image: the file is sorted by digit, so the first 1000 would be only 0s and 1s
    np.savez(tmp_path / "real.npz", images=digits.images[::5].permute(0, 2, 3, 1).numpy())
    assert main(["eval", str(tmp_path / "real.npz"), "--dataset", "mnist-5k", "-n", "1000",
                 "--json", str(tmp_path / "r.json"), "--metrics", "fid,pr"]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    # real digits vs other real digits: the same small FID as the floor, high precision and recall
    assert result["metrics"]["fid"] < 2 * result["floor"]["fid"] + 1
    assert result["metrics"]["precision"] > 0.6 and result["metrics"]["recall"] > 0.6


def test_reference_features_are_cached_and_reused(tmp_path, capsys):
    digits = open_dataset("mnist-5k")
    np.savez(tmp_path / "s.npz", images=digits.images[:300].permute(0, 2, 3, 1).numpy())
    argv = ["eval", str(tmp_path / "s.npz"), "--dataset", "mnist-5k", "-n", "300", "--metrics", "fid",
            "--json", str(tmp_path / "a.json")]
    assert main(argv) == 0
    files = sorted(cache_dir().glob("*.npz"))
    assert files
    stamps = [f.stat().st_mtime_ns for f in files]
    argv[-1] = str(tmp_path / "b.json")
    assert main(argv) == 0
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read, not rewritten
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a["metrics"] == b["metrics"] and a["floor"] == b["floor"]


@pytest.mark.parametrize("argv, message", [
    (["eval", "{tmp}/x.npz"], "--dataset"),
    (["eval", "{tmp}/x.npz", "--dataset", "mnist-5k", "--metrics", "fid,nope"], "nope"),
    (["eval", "{tmp}/nothing-here"], "nothing-here"),
    (["eval", "{tmp}/x.npz", "--dataset", "cifar10-unknown"], "cifar10-unknown"),
])
def test_eval_bad_input_exits_2(tmp_path, capsys, argv, message):
    np.savez(tmp_path / "x.npz", images=np.zeros((4, 28, 28), np.uint8))
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_reference_features_follow_the_pixels_not_just_the_names():
    """A folder whose pictures were rewritten keeps its name and size: the cached features must
    still be recomputed (the key holds a digest of the pixels)."""
    import torch

    from gankit.metrics.reference import RealSet, cached_features

    class Mean:  # a stand-in extractor: one feature, the mean pixel
        fingerprint, calls = "mean-v1", 0

        def __call__(self, images):
            Mean.calls += 1
            return images.float().mean(dim=(1, 2, 3), keepdim=False)[:, None].double().numpy(), None

    before = RealSet(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), None, "4 pictures of my-folder")
    after = RealSet(torch.full((4, 1, 8, 8), 9, dtype=torch.uint8), None, "4 pictures of my-folder")
    assert cached_features(before, Mean(), {"dataset": "my-folder"}).features[0, 0] == 0
    assert cached_features(before, Mean(), {"dataset": "my-folder"}).features[0, 0] == 0 and Mean.calls == 1
    assert cached_features(after, Mean(), {"dataset": "my-folder"}).features[0, 0] == 9 and Mean.calls == 2

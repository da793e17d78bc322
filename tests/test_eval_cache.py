"""What `gankit eval` keeps between evaluations: the reference's k-NN radii and the floor's scores
are computed once per reference, and scores from them are the scores without them."""

from __future__ import annotations

import pytest
import torch

from gankit.data import open_dataset
from gankit.metrics import evaluate, scores
from gankit.metrics.evaluate import Evaluator


@pytest.fixture(scope="module")
def fakes():
    digits = open_dataset("mnist-5k").images[::10]
    noise = torch.randint(-40, 40, digits.shape, generator=torch.Generator().manual_seed(0))
    return (digits.int() + noise).clamp(0, 255).to(torch.uint8)  # noisy digits: a poor generator


def test_radii_and_floor_are_computed_once_and_reused(fakes, monkeypatch, tmp_path):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path))  # a cache of its own: nothing computed before
    calls = {"radii": 0, "compute": 0}
    radii, compute = scores.knn_radii, evaluate.compute

    def counted_radii(*a, **k):
        calls["radii"] += 1
        return radii(*a, **k)

    def counted_compute(*a, **k):
        calls["compute"] += 1
        return compute(*a, **k)

    monkeypatch.setattr(scores, "knn_radii", counted_radii)
    monkeypatch.setattr(evaluate, "compute", counted_compute)
    metrics = ("fid", "pr", "coverage")
    first = Evaluator("mnist-5k", metrics=metrics, n_floor=500).score(fakes)
    assert calls == {"radii": 2, "compute": 2}  # k = 3 and 5, once each for the floor and the model
    second = Evaluator("mnist-5k", metrics=metrics, n_floor=500).score(fakes)
    assert calls == {"radii": 2, "compute": 3}  # only the model's scores are computed again
    assert second.metrics == first.metrics and second.floor == first.floor


def test_kept_radii_give_the_scores_computed_without_them(fakes):
    metrics = ("fid", "pr", "coverage")
    kept = Evaluator("mnist-5k", metrics=metrics, n_floor=500).score(fakes)
    fresh = Evaluator("mnist-5k", metrics=metrics, n_floor=500, use_cache=False).score(fakes)
    for key in ("fid", "precision", "recall", "density", "coverage"):
        assert kept.metrics[key] == pytest.approx(fresh.metrics[key], rel=1e-3, abs=2e-3), key
        assert kept.floor[key] == pytest.approx(fresh.floor[key], rel=1e-3, abs=2e-3), key
    assert kept.metrics["fid"] > 2 * kept.floor["fid"]  # noisy digits are worse than real ones

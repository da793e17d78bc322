"""benchmarks/extractor_agreement.py's arithmetic: ranks with ties and Spearman's rho, by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "extractor_agreement.py"


@pytest.fixture(scope="module")
def agreement():
    spec = importlib.util.spec_from_file_location("extractor_agreement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ranks_share_ties(agreement):
    assert agreement.ranks([30.0, 10.0, 20.0]).tolist() == [3, 1, 2]
    assert agreement.ranks([5.0, 1.0, 5.0, 2.0]).tolist() == [3.5, 1, 3.5, 2]


def test_spearman_known_values(agreement):
    assert agreement.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert agreement.spearman([1, 2, 3, 4], [9, 7, 5, 1]) == pytest.approx(-1.0)
    # Monotone but not linear: Spearman sees only the order.
    assert agreement.spearman([1, 2, 3, 4, 5], [1, 8, 27, 64, 125]) == pytest.approx(1.0)
    # One swap among 4: 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60 = 0.8
    assert agreement.spearman([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(0.8)


def test_spearman_undefined_cases(agreement):
    assert agreement.spearman([1.0], [2.0]) is None
    assert agreement.spearman([1, 2, 3], [5, 5, 5]) is None


def test_spearman_matches_pearson_of_ranks_on_random_data(agreement):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20), rng.normal(size=20)
    expected = np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1]  # no ties here
    assert agreement.spearman(list(a), list(b)) == pytest.approx(expected)

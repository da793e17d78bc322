"""The metric arithmetic against closed forms, brute-force loops and scipy references."""

import math

import numpy as np
import pytest
from scipy import linalg

from gankit.metrics import scores
from gankit.metrics.scores import (
    class_stats,
    density_coverage,
    feature_stats,
    fid,
    fid_from_stats,
    inception_score,
    kid,
    precision_recall,
)


def rng(seed=0):
    return np.random.default_rng(seed)


def random_spd(r, d):
    a = r.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def closed_form_fid(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general matrix square root."""
    covmean = linalg.sqrtm(s1 @ s2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def pytorch_fid_reference(a, b):
    """pytorch-fid's calculate_frechet_distance on np.cov statistics (its offset for singular products)."""
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


# --------------------------------------------------------------------------------------------- FID


def test_fid_of_diagonal_gaussians_is_the_closed_form():
    r = rng(1)
    mu1, mu2 = r.normal(size=16), r.normal(size=16)
    a, b = r.uniform(0.1, 3, size=16), r.uniform(0.1, 3, size=16)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fid_from_stats(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, rel=1e-10, abs=1e-8)


def test_fid_of_commuting_covariances_is_the_closed_form():
    r = rng(2)
    q, _ = np.linalg.qr(r.normal(size=(10, 10)))  # shared eigenvectors: S1 and S2 commute
    a, b = r.uniform(0.1, 3, size=10), r.uniform(0.1, 3, size=10)
    mu1, mu2 = r.normal(size=10), r.normal(size=10)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = fid_from_stats(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-8)


def test_fid_of_singular_covariances_is_exact():
    # rank 30 in 256 dimensions, as the covariance of 31 samples: the 226 zero eigenvalues must not
    # come back as sqrt(rounding noise) ~ 1e-8 each
    r = rng(25)
    q, _ = np.linalg.qr(r.normal(size=(256, 256)))
    a, b = np.zeros(256), np.zeros(256)
    a[:30], b[:30] = r.uniform(0.5, 3, size=30), r.uniform(0.5, 3, size=30)
    want = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = fid_from_stats(np.zeros(256), q @ np.diag(a) @ q.T, np.zeros(256), q @ np.diag(b) @ q.T)
    assert got == pytest.approx(want, rel=1e-10)


def test_fid_of_general_covariances_matches_sqrtm():
    r = rng(3)
    s1, s2 = random_spd(r, 12), random_spd(r, 12)
    mu1, mu2 = r.normal(size=12), r.normal(size=12)
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(closed_form_fid(mu1, s1, mu2, s2), rel=1e-8)


def test_fid_in_one_dimension():
    # (0 - 3)^2 + (sqrt(4) - sqrt(1))^2 = 10, with scalars as statistics
    assert fid_from_stats(0.0, 4.0, 3.0, 1.0) == pytest.approx(10.0, rel=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    x = rng(4).normal(size=(300, 32)) * 3 + 1
    assert fid(x, x) < 1e-6
    fewer_rows_than_dims = rng(5).normal(size=(20, 64))  # singular covariance
    assert fid(fewer_rows_than_dims, fewer_rows_than_dims) < 1e-6


def test_fid_from_samples_approaches_the_closed_form():
    r = rng(6)
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, -0.5, 0.0])
    s1, s2 = random_spd(r, 4), random_spd(r, 4)
    a = r.multivariate_normal(mu1, s1, size=40_000)
    b = r.multivariate_normal(mu2, s2, size=40_000)
    want = closed_form_fid(mu1, s1, mu2, s2)
    assert fid(a, b) == pytest.approx(want, rel=0.03)


@pytest.mark.parametrize("n_a, n_b, d", [(500, 500, 64), (40, 50, 64)])  # the second: N < D, singular
def test_fid_agrees_with_the_pytorch_fid_formula(n_a, n_b, d):
    r = rng(7)
    a = r.normal(size=(n_a, d))
    b = r.normal(size=(n_b, d)) @ random_spd(r, d) + 0.3
    assert fid(a, b) == pytest.approx(pytorch_fid_reference(a, b), rel=1e-6)


def test_fid_accepts_float32():
    r = rng(8)
    a, b = r.normal(size=(200, 8)), r.normal(size=(200, 8)) + 0.5
    assert fid(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(fid(a, b), rel=1e-5)


def test_feature_stats_are_the_mean_and_unbiased_covariance():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    mu, sigma = feature_stats(x)
    np.testing.assert_allclose(mu, [1.0, 1.0])
    np.testing.assert_allclose(sigma, [[4 / 3, 0.0], [0.0, 4 / 3]])  # sum of squares 4 over N - 1 = 3


def test_fid_rejects_mismatched_or_bad_input():
    with pytest.raises(ValueError, match="dimensions"):
        fid(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        fid(np.full((5, 3), np.nan), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        fid(np.zeros((1, 3)), np.zeros((5, 3)))


# --------------------------------------------------------------------------------------------- KID


def brute_force_mmd2(x, y):
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_with_one_full_subset_is_the_unbiased_mmd2():
    r = rng(9)
    x, y = r.normal(size=(12, 3)), r.normal(size=(12, 3)) * 1.5 + 0.5
    mean, std = kid(x, y, subsets=1, subset_size=1000)  # the subset is a permutation of all 12 rows
    assert mean == pytest.approx(brute_force_mmd2(x, y), rel=1e-12)
    assert std == 0.0


def test_kid_of_one_distribution_is_zero_within_its_error():
    r = rng(10)
    # large pools and small subsets, so that the subsets barely overlap
    x, y = r.normal(size=(5000, 8)), r.normal(size=(5000, 8))
    mean, std = kid(x, y, subsets=50, subset_size=100)
    assert std > 0
    assert abs(mean) < 3 * std / math.sqrt(50)


def test_kid_of_a_shifted_distribution_is_positive():
    r = rng(11)
    x, y = r.normal(size=(2000, 8)), r.normal(size=(2000, 8)) + 0.5
    mean, std = kid(x, y, subsets=20, subset_size=200)
    assert mean > 10 * std / math.sqrt(20)


def test_kid_std_is_over_subsets_not_a_standard_error():
    r = rng(12)
    x, y = r.normal(size=(3000, 4)), r.normal(size=(3000, 4)) + 0.2
    _, std_few = kid(x, y, subsets=20, subset_size=50)
    _, std_many = kid(x, y, subsets=200, subset_size=50)
    # a standard error would shrink by sqrt(10) ~ 3.2; the spread of the subsets does not
    assert 0.6 < std_many / std_few < 1.6


def test_kid_subset_size_is_capped_by_the_smaller_set():
    r = rng(13)
    x, y = r.normal(size=(30, 4)), r.normal(size=(40, 4))
    assert kid(x, y, subsets=3, subset_size=30) == kid(x, y, subsets=3, subset_size=10_000)
    with pytest.raises(ValueError, match="at least 2"):
        kid(x[:1], y)


# --------------------------------------------------------------------------------------------- PRDC


def brute_force_radii(x, k):
    return [sorted(np.linalg.norm(x[i] - x[j]) for j in range(len(x)) if j != i)[k - 1]
            for i in range(len(x))]


def brute_force_prdc(real, fake, k_pr, k_dc):
    real_r, fake_r = brute_force_radii(real, k_pr), brute_force_radii(fake, k_pr)

    def dist(a, b):
        return np.linalg.norm(a - b)

    precision = np.mean([any(dist(f, r) <= real_r[i] for i, r in enumerate(real)) for f in fake])
    recall = np.mean([any(dist(r, f) <= fake_r[j] for j, f in enumerate(fake)) for r in real])
    radii = brute_force_radii(real, k_dc)
    density = sum(dist(f, r) < radii[i] for f in fake for i, r in enumerate(real)) / (k_dc * len(fake))
    coverage = np.mean([any(dist(r, f) < radii[i] for f in fake) for i, r in enumerate(real)])
    return precision, recall, density, coverage


@pytest.mark.parametrize("chunk_rows", [1024, 7])  # 7: many blocks, with a ragged last one
def test_prdc_equal_a_brute_force_implementation(monkeypatch, chunk_rows):
    monkeypatch.setattr(scores, "CHUNK_ROWS", chunk_rows)
    r = rng(14)
    real = r.normal(size=(40, 5))
    fake = r.normal(size=(30, 5)) * 1.3 + 0.4
    precision, recall, density, coverage = brute_force_prdc(real, fake, k_pr=3, k_dc=5)
    assert precision_recall(real, fake, k=3) == (precision, recall)
    assert density_coverage(real, fake, k=5) == (density, coverage)
    assert 0 < precision < 1 and 0 < recall < 1 and 0 < coverage < 1  # not a degenerate case


def test_precision_and_recall_of_identical_clouds_are_one():
    real = rng(15).normal(size=(500, 4))
    assert precision_recall(real, real.copy()) == (1.0, 1.0)


def test_precision_and_recall_of_one_distribution_are_high():
    r = rng(16)
    precision, recall = precision_recall(r.normal(size=(2000, 2)), r.normal(size=(2000, 2)))
    assert precision > 0.9 and recall > 0.9


def test_precision_and_recall_of_a_distant_cloud_are_zero():
    r = rng(17)
    assert precision_recall(r.normal(size=(300, 4)), r.normal(size=(300, 4)) + 100) == (0.0, 0.0)


def test_fake_on_half_the_real_support_has_full_precision_and_half_recall():
    r = rng(18)
    left, right = np.array([-20.0, 0.0]), np.array([20.0, 0.0])
    real = np.concatenate([r.normal(size=(500, 2)) + left, r.normal(size=(500, 2)) + right])
    fake = r.normal(size=(1000, 2)) + left  # mode dropping: only the left blob
    precision, recall = precision_recall(real, fake)
    assert precision >= 0.97  # every fake point lies in the left blob of the real data
    assert 0.45 <= recall <= 0.5  # the right half is missed; the left is covered, up to its fringe


def test_density_and_coverage_of_one_distribution():
    r = rng(19)
    density, coverage = density_coverage(r.normal(size=(2000, 3)), r.normal(size=(2000, 3)), k=5)
    assert density == pytest.approx(1.0, abs=0.1)  # E[density] = 1 (Naeem et al.)
    assert coverage == pytest.approx(1 - 2 ** -5, abs=0.03)  # ~ 1 - 2^-k for equal sizes


def test_coverage_of_identical_clouds_is_one():
    real = rng(20).normal(size=(500, 4))
    assert density_coverage(real, real.copy())[1] == 1.0


def test_density_and_coverage_of_disjoint_clouds_are_zero():
    r = rng(21)
    assert density_coverage(r.normal(size=(300, 4)), r.normal(size=(300, 4)) + 100) == (0.0, 0.0)


def test_coverage_drops_but_density_does_not_when_fakes_crowd_into_the_mode():
    r = rng(22)
    density, coverage = density_coverage(r.normal(size=(1000, 2)), r.normal(size=(1000, 2)) * 0.1)
    assert density > 0.8  # each fake point is still as realistic as a real one
    assert coverage < 0.2  # but the tails of the real data are not covered


def test_density_exceeds_one_when_fakes_copy_real_points():
    r = rng(23)
    real = r.normal(size=(1000, 2))
    density, coverage = density_coverage(real, real + r.normal(size=real.shape) * 1e-6, k=5)
    # a copy lies in its twin's ball, in the balls of the points whose k-1 nearer neighbours it
    # copies, and, half the time, in the ball whose boundary its twin defines: (1 + 4 + 1/2) / 5
    assert density == pytest.approx(1.1, abs=0.03)
    assert coverage == 1.0


def test_ball_boundaries_count_for_precision_recall_but_not_density_coverage():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # k = 1: every real radius is exactly 1
    # 4 lies on the boundary of real 3's ball: inside for precision (closed balls, Kynkäänniemi et al.)
    assert precision_recall(real, np.array([[4.0], [10.0]]), k=1) == (0.5, 1.0)
    # ... outside for density (open balls, Naeem et al.); 2.5 lies inside the balls of 2 and 3
    assert density_coverage(real, np.array([[4.0], [2.5]]), k=1) == (1.0, 0.5)


def test_prdc_need_more_points_than_k():
    with pytest.raises(ValueError, match="more than k"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)


# ----------------------------------------------------------------------------------------------- IS


def one_hot_logits(labels, k, margin=30.0):
    return np.eye(k)[labels] * margin


def test_inception_score_of_confident_balanced_predictions_is_the_class_count():
    labels = np.arange(1000) % 10  # every split of 100 holds each class 10 times
    mean, std = inception_score(one_hot_logits(labels, 10), splits=10)
    assert mean == pytest.approx(10.0, rel=1e-6)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_stays_finite_with_extreme_logits():
    labels = np.arange(100) % 4
    mean, _ = inception_score(one_hot_logits(labels, 4, margin=1e4), splits=5)
    assert mean == pytest.approx(4.0, rel=1e-12)


def test_inception_score_of_identical_predictions_is_one():
    logits = np.tile(rng(24).normal(size=(1, 7)), (500, 1))
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_soft_predictions_matches_the_formula():
    p = np.array([[0.9, 0.1], [0.1, 0.9]] * 5)  # p(y) = (1/2, 1/2)
    mean, _ = inception_score(np.log(p), splits=1)
    assert mean == pytest.approx(math.exp(0.9 * math.log(1.8) + 0.1 * math.log(0.2)), rel=1e-12)


def test_inception_score_mean_and_std_are_over_consecutive_splits():
    labels = np.concatenate([np.zeros(10, dtype=int), np.arange(10)])  # split 1: one class; split 2: ten
    mean, std = inception_score(one_hot_logits(labels, 10), splits=2)
    assert mean == pytest.approx(5.5, rel=1e-9)
    assert std == pytest.approx(4.5, rel=1e-9)  # population std of (1, 10)


# --------------------------------------------------------------------------------------- class stats


def test_class_stats_of_known_labels():
    pred = np.array([0] * 50 + [1] * 30 + [2] * 17 + [3] * 3)
    stats = class_stats(pred, num_classes=5)
    assert stats["class_share"] == [0.5, 0.3, 0.17, 0.03, 0.0]
    assert stats["missing_threshold"] == pytest.approx(0.02)
    assert stats["classes_missing"] == 1  # class 4 (share 0); class 3 (0.03) is rare but above 0.02
    shares = np.array([0.5, 0.3, 0.17, 0.03])
    assert stats["class_kl_from_uniform"] == pytest.approx(np.sum(shares * np.log(shares * 5)), rel=1e-12)
    assert "accuracy" not in stats


def test_class_stats_counts_a_rare_class_as_missing():
    pred = np.array([0] * 49 + [1] * 49 + [2] * 2)  # class 2: share 0.02 < 0.1 / 3
    assert class_stats(pred, num_classes=3)["classes_missing"] == 1


def test_class_kl_from_uniform_is_zero_when_balanced_and_log_k_when_collapsed():
    assert class_stats(np.arange(40) % 4, 4)["class_kl_from_uniform"] == pytest.approx(0.0, abs=1e-15)
    collapsed = class_stats(np.full(40, 2), 4)
    assert collapsed["class_kl_from_uniform"] == pytest.approx(math.log(4), rel=1e-12)
    assert collapsed["classes_missing"] == 3


def test_class_stats_with_requested_classes():
    target = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 2])
    stats = class_stats(pred, num_classes=4, target_labels=target)
    assert stats["per_class_accuracy"] == [0.75, 0.5, 1.0, None]  # class 3 was never requested
    assert stats["accuracy"] == pytest.approx(0.8)


def test_class_stats_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match="lie in"):
        class_stats(np.array([0, 3]), num_classes=3)
    with pytest.raises(ValueError, match="integers"):
        class_stats(np.array([0.0, 1.0]), num_classes=3)

"""The arithmetic of sample-quality metrics, on features that some network already extracted.

FID, KID, improved precision/recall, density/coverage, the Inception Score and class statistics.
Every function takes numpy arrays of shape [N, D] (float32 is accepted) and computes in float64:
FID subtracts traces of similar size and KID averages millions of cubed kernel values, where float32
loses digits that matter. Only numpy is used, so these metrics need no scipy or scikit-learn.
"""

from __future__ import annotations

import numpy as np

# Rows of one block of pairwise distances: a block is CHUNK_ROWS x M float64 values (80 MB against
# M = 10,000 points), so 10k x 10k comparisons never hold the whole 800 MB matrix.
CHUNK_ROWS = 1024


def _as_features(x, name: str) -> np.ndarray:
    """`x` as a finite float64 array of shape [N, D], N >= 1, or a ValueError naming `name`."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty array of shape [N, D], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")


# --------------------------------------------------------------------------------------------- FID


def _negligible(eigenvalues: np.ndarray) -> float:
    """Eigenvalues below this are zero up to rounding (numpy.linalg.matrix_rank's tolerance).

    A covariance of N < D samples is singular; its zero eigenvalues come out of eigh as +-1e-16 x the
    largest, and their square roots (1e-8 x) would add up to a visible error over hundreds of
    dimensions, so they are set to exactly 0 instead.
    """
    return max(eigenvalues.max(initial=0.0), 0.0) * len(eigenvalues) * np.finfo(np.float64).eps


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix, by eigendecomposition."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    eigenvalues[eigenvalues < _negligible(eigenvalues)] = 0.0
    return (eigenvectors * np.sqrt(eigenvalues)) @ eigenvectors.T


def fid_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

        FID = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2})

    Numerical approach: S1 S2 is not symmetric, and the usual route (pytorch-fid) takes its square
    root with scipy.linalg.sqrtm, a Schur method that can return complex parts and needs a diagonal
    offset when a covariance is singular. Here only symmetric eigenproblems are solved: S1 S2 has the
    same eigenvalues as the symmetric PSD matrix M = S1^{1/2} S2 S1^{1/2} (AB and BA share them, with
    A = S1^{1/2}, B = S1^{1/2} S2), and the trace of a square root is the sum of the square roots of
    the eigenvalues, so Tr((S1 S2)^{1/2}) = sum(sqrt(eigvalsh(M))). S1^{1/2} comes from eigh of S1.
    Eigenvalues that rounding pushed below zero, or that are zero up to rounding (singular
    covariances, N < D), are set to 0. The result is clipped at 0, which it can only undershoot by
    rounding.

    `mu1`, `mu2`: means of shape [D]; `sigma1`, `sigma2`: covariance matrices of shape [D, D].
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"expected means of shape [D] and covariances [D, D], got {mu1.shape}, "
                         f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    for value in (mu1, mu2, sigma1, sigma2):
        if not np.isfinite(value).all():
            raise ValueError("FID statistics contain NaN or infinite values")
    # A covariance is symmetric; averaging with the transpose removes the last-bit asymmetry that a
    # matrix product leaves, which eigh (it reads one triangle only) would otherwise silently keep.
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2

    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    eigenvalues[eigenvalues < _negligible(eigenvalues)] = 0.0
    trace_sqrt = np.sqrt(eigenvalues).sum()

    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(max(value, 0.0))


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] (divided by N - 1) of features [N, D], as pytorch-fid."""
    features = _as_features(features, "features")
    if len(features) < 2:
        raise ValueError("a covariance needs at least 2 feature vectors")
    # atleast_2d: np.cov returns a 0-d array when D = 1
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def fid(features_a, features_b) -> float:
    """Fréchet Inception Distance between two feature sets [N, D] and [M, D] (see fid_from_stats)."""
    a, b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    _same_dim(a, b)
    return fid_from_stats(*feature_stats(a), *feature_stats(b))


# --------------------------------------------------------------------------------------------- KID


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size sets with the kernel k(a, b) = (a.b / D + 1)^3.

    Within-set sums leave out the diagonal k(x_i, x_i), whose expectation differs from that of
    k(x_i, x_j); the cross term keeps all m^2 pairs, since every x_i is independent of every y_j
    (the estimator of Bińkowski et al., torch-fidelity's "unbiased" and clean-fid's).
    """
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kid(features_a, features_b, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2, polynomial kernel (x.y / D + 1)^3, over random subsets.

    Each of `subsets` rounds draws min(subset_size, len(a), len(b)) rows of each set without
    replacement (numpy RandomState(seed), drawing a then b, as torch-fidelity) and computes the
    unbiased MMD^2 between them. Returns (mean, std), where std is the standard deviation of the
    per-subset values (numpy's ddof=0), the number torch-fidelity reports as
    kernel_inception_distance_std. It is NOT the standard error of the mean: it does not shrink with
    more subsets; divide it by sqrt(subsets) for a rough standard error (rough: subsets overlap).

    The estimate is unbiased, so it can be slightly negative when both sets come from one distribution.
    """
    a, b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    _same_dim(a, b)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs subsets of at least 2 rows, got {size}")
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        pick_a = rng.choice(len(a), size, replace=False)
        pick_b = rng.choice(len(b), size, replace=False)
        values.append(_polynomial_mmd2(a[pick_a], b[pick_b]))
    return float(np.mean(values)), float(np.std(values))


# ------------------------------------------------------------- precision/recall, density/coverage


def _distance_blocks(x: np.ndarray, y: np.ndarray):
    """Yield (start, block): Euclidean distances from x[start:start + CHUNK_ROWS] to every row of y."""
    y_sq = (y * y).sum(axis=1)
    for start in range(0, len(x), CHUNK_ROWS):
        chunk = x[start:start + CHUNK_ROWS]
        sq = (chunk * chunk).sum(axis=1)[:, None] - 2 * chunk @ y.T + y_sq[None, :]
        # ||a||^2 - 2 a.b + ||b||^2 cancels when a ~ b and can come out a hair below zero
        yield start, np.sqrt(np.maximum(sq, 0.0))


def _knn_radii(x: np.ndarray, k: int, name: str) -> np.ndarray:
    """Distance from each row of x to its k-th nearest neighbour among the other rows of x."""
    if not 1 <= k < len(x):
        raise ValueError(f"k = {k} nearest neighbours need k >= 1 and more than k rows of {name}, "
                         f"got {len(x)}")
    radii = np.empty(len(x))
    for start, block in _distance_blocks(x, x):
        rows = np.arange(len(block))
        # a point's distance to itself is 0, but _distance_blocks' expansion leaves ~1e-8 of rounding
        block[rows, start + rows] = 0.0
        # sorted, each row starts with that 0 for the point itself, so index k is its k-th neighbour
        radii[start:start + len(block)] = np.partition(block, k, axis=1)[:, k]
    return radii


def knn_radii(features, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point of the same set (the balls of
    precision/recall and density/coverage): computed once per reference and kept (reference.py)."""
    return _knn_radii(_as_features(features, "features"), k, "features")


def precision_recall(real, fake, k: int = 3, real_radii: np.ndarray | None = None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of `fake` [M, D] against `real` [N, D].

    Each point of a set gets a ball whose radius is the distance to its k-th nearest neighbour in
    its own set (itself excluded). Precision is the share of fake points inside at least one real
    ball (are the samples realistic?); recall is the share of real points inside at least one fake
    ball (is the real data's variety covered?). A ball includes its boundary (<=), as in the
    authors' code. Distances are computed CHUNK_ROWS rows at a time, so 10k x 10k sets are fine.
    `real_radii`: knn_radii(real, k), when already known.
    """
    real, fake = _as_features(real, "real"), _as_features(fake, "fake")
    _same_dim(real, fake)
    real_radii = _knn_radii(real, k, "real") if real_radii is None else real_radii
    fake_radii = _knn_radii(fake, k, "fake")
    # one pass over the fake-to-real distances serves both directions
    fakes_inside = 0
    reals_inside = np.zeros(len(real), dtype=bool)
    for start, block in _distance_blocks(fake, real):  # block[j, i] = |fake_j - real_i|
        fakes_inside += int(np.count_nonzero((block <= real_radii[None, :]).any(axis=1)))
        reals_inside |= (block <= fake_radii[start:start + len(block), None]).any(axis=0)
    return fakes_inside / len(fake), float(reals_inside.mean())


def density_coverage(real, fake, k: int = 5, real_radii: np.ndarray | None = None) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of `fake` [M, D] against `real` [N, D].

    Only real points get balls (radius: distance to the k-th nearest other real point), which makes
    both numbers robust to fake outliers, unlike precision/recall.
    density = (1 / (k M)) sum_j sum_i 1[fake_j in B(real_i, r_i)]: a fake point anywhere in the real
    support lies in about k real balls, so density is about 1 when the fakes are realistic, however
    they are spread; it is not bounded by 1 (fakes that copy real points score about 1 + 1/(2k)).
    coverage = share of real points whose ball holds at least one fake point, in [0, 1]; for two
    samples of one distribution of equal size it is about 1 - 2^-k, not 1.
    Balls are open (strict <), as in the authors' code. `real_radii`: knn_radii(real, k), when
    already known (the reference's, kept between evaluations).
    """
    real, fake = _as_features(real, "real"), _as_features(fake, "fake")
    _same_dim(real, fake)
    radii = _knn_radii(real, k, "real") if real_radii is None else real_radii
    memberships = 0
    covered = np.zeros(len(real), dtype=bool)
    for _, block in _distance_blocks(fake, real):  # block[j, i] = |fake_j - real_i|
        inside = block < radii[None, :]
        memberships += int(np.count_nonzero(inside))
        covered |= inside.any(axis=0)
    return memberships / (k * len(fake)), float(covered.mean())


# ----------------------------------------------------------------------------- Inception Score


def _logsumexp(x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    out = np.log(np.exp(x - top).sum(axis=axis, keepdims=True)) + top
    return out if keepdims else out.squeeze(axis)


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
    """Inception Score exp(E_x KL(p(y|x) || p(y))), p(y|x) = softmax(logits), logits of shape [N, K].

    The standard protocol: the N samples are cut, in the order given, into `splits` consecutive
    parts of N // splits or N // splits + 1; p(y) is the mean prediction within a part; returns the
    mean and the standard deviation (ddof=0) of the parts' scores. It ranges from 1 (every sample
    predicted alike) to K (confident predictions spread evenly over the K classes). Probabilities
    can be passed as their logarithms, if none is 0 (log 0 is not finite). The arithmetic stays in
    log space, so very confident logits give no log(0) inside.
    """
    logits = _as_features(logits, "logits")
    n = len(logits)
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be between 1 and the number of samples ({n}), got {splits}")
    log_p = logits - _logsumexp(logits, axis=1, keepdims=True)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]
        log_marginal = _logsumexp(part, axis=0) - np.log(len(part))
        kl = (np.exp(part) * (part - log_marginal)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


# ------------------------------------------------------------------------------- class statistics


def _as_labels(x, num_classes: int, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1 or len(arr) == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-d array of integers, got {arr.dtype} {arr.shape}")
    if arr.min() < 0 or arr.max() >= num_classes:
        raise ValueError(f"{name} must lie in [0, {num_classes}), got values {arr.min()}..{arr.max()}")
    return arr


def class_stats(pred_labels, num_classes: int, target_labels=None) -> dict:
    """How a classifier sorts generated samples into classes (mode collapse shows up here).

    `pred_labels`: the class a classifier gives each sample, ints in [0, num_classes).
    Returns a JSON-ready dict:
      "class_share": share of the samples in each class (a list of num_classes floats);
      "missing_threshold": 0.1 / num_classes, a tenth of the balanced share; "classes_missing": how
        many classes fall below it (a generator that makes a class ten times too rarely has lost it
        for practical purposes, and sampling noise alone rarely drops a class that low);
      "class_kl_from_uniform": KL(share || uniform) in nats, 0 when balanced, log(num_classes) when
        every sample lands in one class.
    With `target_labels`, the classes a conditional generator was asked for, also:
      "per_class_accuracy": for each class, the share of the samples requested as it that the
        classifier puts in it (None for a class never requested); "accuracy": the share overall.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    pred = _as_labels(pred_labels, num_classes, "pred_labels")
    share = np.bincount(pred, minlength=num_classes) / len(pred)
    threshold = 0.1 / num_classes
    present = share > 0  # 0 log 0 = 0
    stats = {
        "class_share": share.tolist(),
        "missing_threshold": threshold,
        "classes_missing": int(np.count_nonzero(share < threshold)),
        "class_kl_from_uniform": float(np.sum(share[present] * np.log(share[present] * num_classes))),
    }
    if target_labels is not None:
        target = _as_labels(target_labels, num_classes, "target_labels")
        if len(target) != len(pred):
            raise ValueError(f"{len(pred)} predicted labels but {len(target)} target labels")
        correct = pred == target
        requested = np.bincount(target, minlength=num_classes)
        hits = np.bincount(target[correct], minlength=num_classes)
        stats["per_class_accuracy"] = [float(h / r) if r else None for h, r in zip(hits, requested)]
        stats["accuracy"] = float(correct.mean())
    return stats

"""Sample-quality statistics on feature sets (rows are samples), float64 throughout.

Each function takes a seeded numpy Generator where it resamples, so every number is repeatable.
"""
from __future__ import annotations

import numpy as np


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via its eigen decomposition.
    Tiny negative eigenvalues (rounding) are clipped to 0, so the result is real."""
    a = (np.asarray(a, np.float64) + np.asarray(a, np.float64).T) / 2
    values, vectors = np.linalg.eigh(a)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """|mu1-mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)).

    tr((C1 C2)^(1/2)) = tr((s C2 s)^(1/2)) with s = C1^(1/2): the matrix inside is symmetric PSD,
    so the symmetric eigen route is exact where a general sqrtm would return complex rounding."""
    s = sqrtm_psd(cov1)
    cross = np.trace(sqrtm_psd(s @ cov2 @ s))
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * cross, 0.0))


def fd_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*mean_cov(a), *mean_cov(b))


def bootstrap(statistic, fake: np.ndarray, rng: np.random.Generator, rounds: int = 10) -> float:
    """Spread (std) of statistic(resampled fake) over seeded resamples with replacement."""
    n = len(fake)
    values = [statistic(fake[rng.integers(0, n, n)]) for _ in range(rounds)]
    return float(np.std(values, ddof=1))


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel k(a, b) = (a.b/d + 1)^3 (KID's kernel)."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def kid(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator, subsets: int = 50,
        subset_size: int = 500) -> tuple[float, float]:
    """Kernel Inception Distance analogue: mean and std of unbiased MMD^2 over seeded subsets."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    size = min(subset_size, len(real), len(fake))
    values = [mmd2_unbiased(real[rng.choice(len(real), size, replace=False)],
                            fake[rng.choice(len(fake), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values, ddof=1))


def classifier_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """The Inception-score analogue exp(E_x KL(p(y|x) || p(y))): mean and std over splits."""
    probs = np.asarray(probs, np.float64)
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores, ddof=1))


# A class counts as covered when it gets at least a quarter of its uniform share of samples.
COVERED_FRACTION_OF_UNIFORM = 0.25


def class_coverage(probs: np.ndarray) -> dict:
    """Predicted-class histogram, modes covered and KL(histogram || uniform) in nats."""
    k = probs.shape[1]
    hist = np.bincount(np.argmax(probs, axis=1), minlength=k).astype(np.int64)
    p = hist / hist.sum()
    nonzero = p > 0
    return {"histogram": hist.tolist(),
            "modes_covered": int(np.sum(p >= COVERED_FRACTION_OF_UNIFORM / k)),
            "kl_to_uniform": float(np.sum(p[nonzero] * np.log(p[nonzero] * k)))}


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d, 0)


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest other row."""
    d = _sq_distances(x, x)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)


# The share of a set's points, those with the largest k-NN radius, that hold no ball in precision
# and recall: an isolated point's ball is wide enough to swallow whole regions of feature space.
# One real digit of the reference set (3-NN radius in its top 2.2%) held 956 of a 60-iteration
# generator's 1,000 grey-noise samples, scoring that noise precision 0.956 (docs/quality.md#noise).
# Kynkaanniemi et al. 2019 drop the widest half for their realism score; 5% drops the outliers
# and keeps the real-vs-real floor near its former value (0.91 -> 0.84).
OUTLIER_FRACTION = 0.05


def robust_balls(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres, squared radii) of the k-NN balls of x, its widest OUTLIER_FRACTION dropped."""
    r = _kth_neighbour_radius(x, k)
    keep = r <= np.quantile(r, 1 - OUTLIER_FRACTION)
    return x[keep], r[keep]


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Kynkaanniemi et al. 2019 with robust balls: precision = share of fakes inside some real's
    k-NN ball; recall = share of reals inside some fake's k-NN ball; the widest OUTLIER_FRACTION
    of each set's balls are dropped (robust_balls)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    (real_c, r_real), (fake_c, r_fake) = robust_balls(real, k), robust_balls(fake, k)
    precision = np.mean(np.any(_sq_distances(real_c, fake) <= r_real[:, None], axis=0))
    recall = np.mean(np.any(_sq_distances(real, fake_c) <= r_fake[None, :], axis=1))
    return float(precision), float(recall)


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Naeem et al. 2020: density = mean number of real k-NN balls holding each fake, over k;
    coverage = share of reals whose k-NN ball holds at least one fake."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    r_real = _kth_neighbour_radius(real, k)
    inside = _sq_distances(real, fake) <= r_real[:, None]
    return float(inside.sum() / (k * len(fake))), float(np.mean(inside.any(axis=1)))

"""Across training seeds: each backend's spread and whether backends differ at all.

A GAN amplifies float32 rounding: another seed, or the same seed on another CPU's kernels, ends
on another FD, and the spread between seeds is an order of magnitude above the evaluator's own
bootstrap error (benchmarks/results/seed-study/). So a quality difference between backends is
judged only against the seed spread, with a rank test that assumes no distribution:

- per backend: n, mean, sample std, a 95% Student-t interval of the mean;
- across backends: Kruskal-Wallis (scipy.stats.kruskal), and pairwise Mann-Whitney U tests
  (two-sided, exact for small n) with Holm's step-down correction of the family;
- the answer in words, including when the seeds are too few for a rank test to reach the level
  at all (Mann-Whitney's smallest two-sided p with 3 seeds a side is 0.10).
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np

ALPHA = 0.05  # the family-wise error rate of every verdict here
MIN_SEEDS = 3  # fewer seeds a backend: no between-backend test (too few to rank)


def summarize(values) -> dict:
    """n, mean, sample std and a 95% t interval of the mean (std and interval need 2 values)."""
    from scipy import stats
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    out = {"n": int(v.size), "mean": float(v.mean()) if v.size else None, "std": None, "ci95": None,
           "min": float(v.min()) if v.size else None, "max": float(v.max()) if v.size else None}
    if v.size > 1:
        std = float(v.std(ddof=1))
        half = float(stats.t.ppf(0.975, v.size - 1)) * std / math.sqrt(v.size)
        out.update(std=std, ci95=[out["mean"] - half, out["mean"] + half])
    return out


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (family-wise error control)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def smallest_pairwise_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p an exact Mann-Whitney test can give with these group sizes (every
    value of one group above every value of the other): 2 / C(n_a + n_b, n_a)."""
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def between_backends(groups: dict[str, list[float]], measure: str = "FD", alpha: float = ALPHA) -> dict:
    """Do the backends differ? groups: backend -> one value per seed. Returns the test's record:
    {"test", "measure", "n_per_backend", "statistic", "p", "pairs": [...], "different": [...],
    "verdict": words}. Backends with fewer than MIN_SEEDS values are left out and named."""
    from scipy import stats
    clean = {k: [float(x) for x in v if x is not None and math.isfinite(x)] for k, v in groups.items()}
    used = {k: v for k, v in clean.items() if len(v) >= MIN_SEEDS}
    left_out = sorted(set(clean) - set(used))
    record = {"test": "Kruskal-Wallis; pairwise Mann-Whitney U with Holm's correction",
              "measure": measure, "alpha": alpha, "n_per_backend": {k: len(v) for k, v in clean.items()},
              "left_out": left_out, "statistic": None, "p": None, "pairs": [], "different": []}
    if len(used) < 2:
        record["verdict"] = (f"not tested: a between-backend test needs at least {MIN_SEEDS} seeds "
                             f"for two backends or more (seeds per backend: "
                             f"{_counts(record['n_per_backend'])})")
        return record
    values = list(used.values())
    if np.ptp(np.concatenate(values)) == 0:
        h, p = 0.0, 1.0  # every value equal: no rank difference at all (kruskal raises)
    else:
        h, p = stats.kruskal(*values)
    pairs = []
    for a, b in combinations(used, 2):
        if np.ptp(np.concatenate([used[a], used[b]])) == 0:
            pu = 1.0
        else:
            pu = float(stats.mannwhitneyu(used[a], used[b], alternative="two-sided",
                                          method="exact" if len(used[a]) + len(used[b]) <= 16 else "auto").pvalue)
        pairs.append({"a": a, "b": b, "p": pu, "smallest_possible_p": smallest_pairwise_p(len(used[a]), len(used[b])),
                      "difference_of_means": float(np.mean(used[b]) - np.mean(used[a]))})
    for pair, adjusted in zip(pairs, holm([x["p"] for x in pairs])):
        pair["p_holm"] = adjusted
        pair["different"] = adjusted < alpha
    if len(used) == 2:  # two groups: Kruskal-Wallis is Mann-Whitney's asymptotic form; the exact one decides
        p = pairs[0]["p"]
        record["test"] = "Mann-Whitney U (exact for small n)"
    record.update(statistic=float(h), p=float(p), pairs=pairs,
                  different=[f"{x['a']} vs {x['b']}" for x in pairs if x["different"]])
    record["verdict"] = verdict(record, used)
    return record


def verdict(record: dict, used: dict[str, list[float]]) -> str:
    """The test's answer in plain words, with what it could and could not have detected."""
    measure, alpha = record["measure"], record["alpha"]
    n_min = min(len(v) for v in used.values())
    reachable = smallest_pairwise_p(n_min, n_min) * len(record["pairs"]) < alpha
    spread = float(np.sqrt(np.mean([np.var(v, ddof=1) for v in used.values()])))
    detectable = _detectable(spread, n_min, len(record["pairs"]), alpha)
    if record["p"] < alpha and record["different"]:
        words = (f"yes: the backends' {measure} differ beyond the seed spread ({_name(record)} p = "
                 f"{record['p']:.3g}); pairs that differ after Holm's correction: "
                 + ", ".join(record["different"]))
    elif record["p"] < alpha:
        words = (f"the backends' {measure} differ as a group ({_name(record)} p = {record['p']:.3g}), "
                 f"but no single pair does after Holm's correction at {alpha}")
    else:
        words = (f"no difference found: at {n_min} seeds per backend the backends' {measure} are "
                 f"within the seed spread ({_name(record)} p = {record['p']:.3g} >= {alpha})")
    if not reachable:
        words += (f"; {n_min} seeds a backend are too few for any pair to reach {alpha} after "
                  "Holm's correction, however far apart")
    elif record["p"] >= alpha:
        words += (f"; with a pooled seed std of {spread:.3g}, a difference of about {detectable:.3g} "
                  "or more would have been found most of the time (80% power, normal approximation)")
    left = record.get("left_out")
    if left:
        words += f"; left out with fewer than {MIN_SEEDS} seeds: {', '.join(left)}"
    return words


def _detectable(std: float, n: int, comparisons: int, alpha: float) -> float:
    """The difference of two means that a two-sided test at alpha/comparisons (Bonferroni, as
    Holm's first step) detects with 80% power, normal approximation; rank tests need ~5% more."""
    from scipy import stats
    z = stats.norm.ppf(1 - alpha / (2 * max(comparisons, 1))) + stats.norm.ppf(0.8)
    return float(z * std * math.sqrt(2.0 / n))


def noise_threshold(std: float, df: int | None = None) -> float:
    """How far apart two single-seed values must be to differ beyond the seed spread: t·√2·std,
    the difference of two draws having std √2·std; t is Student's 97.5% quantile for the df the
    std was estimated with (1.96 with df None: a known std), so 5% of same-backend pairs land
    beyond it."""
    from scipy import stats
    t = float(stats.t.ppf(0.975, df)) if df else 1.959964
    return t * math.sqrt(2.0) * std


def beyond_seed_noise(a: float, b: float, std: float, df: int | None = None) -> bool:
    """Two single-seed values differ beyond the seed spread (noise_threshold)."""
    return abs(b - a) > noise_threshold(std, df)


def _name(record: dict) -> str:
    return record["test"].split(";")[0].split(" (")[0]


def _counts(n: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in n.items())

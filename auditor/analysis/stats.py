"""Exact tests used by the detector (numpy only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def poisson_binomial_sf(k: int, probs: Sequence[float]) -> float:
    """P(X >= k) where X is a sum of independent Bernoulli(probs[i]).

    With equal probabilities this is the exact one-sided binomial test. Computed by dynamic
    programming over the probability mass function, exact in float64 down to ~1e-300.
    """
    n = len(probs)
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    pmf = np.zeros(n + 1)
    pmf[0] = 1.0
    for i, p in enumerate(probs):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability {p} out of [0, 1]")
        upper = pmf[: i + 2].copy()
        pmf[1 : i + 2] = upper[1:] * (1.0 - p) + upper[:-1] * p
        pmf[0] = upper[0] * (1.0 - p)
    return float(min(1.0, max(0.0, pmf[k:].sum())))


def rank_sum_p_value(ranks: Sequence[int], ks: Sequence[int]) -> float:
    """One-sided p-value that the ranks are this low (1 = best) if each is uniform on 1..K.

    Uses every item's rank, so it has power when leakage lifts many items a little without putting
    them on top. Exact by convolution for small problems, normal approximation (with continuity
    correction) otherwise: each rank has mean (K+1)/2 and variance (K^2-1)/12.
    """
    if not ranks:
        return 1.0
    total = sum(ranks)
    if sum(ks) <= 20_000:
        pmf = np.zeros(1)
        pmf[0] = 1.0
        for k in ks:
            pmf = np.convolve(pmf, np.full(k, 1.0 / k))
        # pmf index j corresponds to a rank sum of len(ks) + j
        return float(min(1.0, pmf[: total - len(ks) + 1].sum()))
    mean = sum((k + 1) / 2 for k in ks)
    var = sum((k * k - 1) / 12 for k in ks)
    z = (total + 0.5 - mean) / math.sqrt(var)
    return float(0.5 * math.erfc(-z / math.sqrt(2)))


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def leaked_fraction(successes: int, n: int, chance: float) -> tuple[float, float, float]:
    """Chance-corrected share of items whose published order is on top because of leakage.

    If a fraction f of items always put the published order first and the rest do so with
    probability `chance`, the top-1 rate is r = f + (1 - f) * chance, so f = (r - chance) / (1 - chance).
    The interval maps the Wilson interval of r the same way; all three are clipped to [0, 1].
    """
    if n == 0 or chance >= 1:
        return 0.0, 0.0, 1.0
    lo, hi = wilson_interval(successes, n)

    def f(r: float) -> float:
        return min(1.0, max(0.0, (r - chance) / (1 - chance)))

    return f(successes / n), f(lo), f(hi)


def fisher_greater(a_success: int, a_n: int, b_success: int, b_n: int) -> float:
    """One-sided Fisher exact test that group a's rate exceeds group b's."""
    total_s = a_success + b_success
    total = a_n + b_n

    def log_hyper(x: int) -> float:
        return _log_comb(a_n, x) + _log_comb(b_n, total_s - x) - _log_comb(total, total_s)

    hi = min(a_n, total_s)
    terms = [log_hyper(x) for x in range(a_success, hi + 1) if 0 <= total_s - x <= b_n]
    if not terms:
        return 1.0
    m = max(terms)
    return float(min(1.0, math.exp(m) * sum(math.exp(t - m) for t in terms)))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (false discovery rate), in the input's order."""
    n = len(p_values)
    order = sorted(range(n), key=lambda i: p_values[i])
    adjusted = [0.0] * n
    running = 1.0
    for rank in range(n, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * n / rank)
        adjusted[i] = min(1.0, running)
    return adjusted


def wilcoxon_greater(differences: Sequence[float]) -> float:
    """One-sided Wilcoxon signed-rank test that paired differences tend to be positive.

    Zero differences are dropped; tied magnitudes share their average rank; normal approximation with
    continuity correction (fine from ~10 pairs on).
    """
    d = np.asarray([x for x in differences if x != 0], dtype=float)
    n = len(d)
    if n == 0:
        return 1.0
    order = np.argsort(np.abs(d), kind="stable")
    ranks = np.empty(n)
    mags = np.abs(d)[order]
    i = 0
    while i < n:
        j = i
        while j + 1 < n and mags[j + 1] == mags[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    w_plus = float(ranks[d > 0].sum())
    mean = n * (n + 1) / 4
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    z = (w_plus - mean - 0.5) / sd
    return float(0.5 * math.erfc(z / math.sqrt(2)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (family-wise error rate, valid under any dependence), in the input's order."""
    n = len(p_values)
    order = sorted(range(n), key=lambda i: p_values[i])
    adjusted = [0.0] * n
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (n - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted

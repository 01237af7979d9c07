"""Exact tests used by the detector (numpy only)."""

from __future__ import annotations

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

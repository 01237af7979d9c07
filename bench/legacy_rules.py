"""The item rule auditor used before issue 17 ("v1"), kept here only so bench/detection.py can compare it.

v1 split alpha 2.5% / 2.5% over the scenarios and asked for rank 1 AND a z-score above a threshold:
from exchangeable Gaussian scores without a control, from the control's own rank-1 winners with one (the
control's quantiles, not paired with the same item).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from auditor.analysis.detector import ItemStats

_SIMULATIONS = 20_000


def _threshold(values: np.ndarray[Any, Any], rate: float) -> float:
    finite = np.sort(values[np.isfinite(values)])[::-1]
    k = int(np.floor(rate * len(values)))
    if k >= len(finite):
        return float(finite[-1]) if len(finite) else 0.0
    return float(np.nextafter(finite[k], np.inf))


def _stats(scores: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    pub, rest = scores[:, 0], scores[:, 1:]
    top = pub >= rest.max(axis=1)
    z_pub = (pub - rest.mean(axis=1)) / rest.std(axis=1, ddof=1)
    best = scores.argmax(axis=1)
    srt = np.sort(scores, axis=1)
    others = srt[:, :-1]
    z_best = (srt[:, -1] - others.mean(axis=1)) / others.std(axis=1, ddof=1)
    return np.where(top, z_pub, -np.inf), np.where(best != 0, z_best, -np.inf)


def thresholds(control: Sequence[ItemStats] | None, k: int = 24, alpha: float = 0.05) -> tuple[float, float]:
    if control is None:
        z_a, z_b = _stats(np.random.default_rng(0).normal(size=(_SIMULATIONS, k)))
    else:
        z_a = np.array([v.z_published if v.rank == 1 else -np.inf for v in control])
        z_b = np.array([v.outlier_score if v.best_index != 0 else -np.inf for v in control])
    return _threshold(z_a, alpha / 2), _threshold(z_b, alpha / 2)


def decide_v1(v: ItemStats, t: tuple[float, float]) -> str | None:
    """ "a", "b" or None, as v1 decided."""
    if v.rank == 1 and v.z_published >= t[0]:
        return "a"
    if v.best_index != 0 and v.outlier_score >= t[1]:
        return "b"
    return None

"""The sequential test: valid under optional stopping, quick when leakage is large, sure when it is absent."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.analysis.sequential import SequentialTest
from auditor.analysis.stats import poisson_binomial_sf


def stream(rng: np.random.Generator, f: float, k: int, n: int) -> list[bool]:
    return list(rng.random(n) < f + (1 - f) / k)


def run(tops: list[bool], k: int = 24, tolerance: float = 0.1) -> SequentialTest:
    t = SequentialTest(alpha=0.05, tolerance=tolerance)
    for top in tops:
        if t.update(k, top) is not None:
            break
    return t


def test_false_leakage_rate_stays_below_alpha_despite_peeking_every_item() -> None:
    rng = np.random.default_rng(7)
    sims = 300
    ours = naive = 0
    # smallest top-1 count with an exact binomial p < 0.05 after n items (n = 1..250)
    critical = np.array([next(h for h in range(n + 2) if h > n or poisson_binomial_sf(h, [1 / 24] * n) < 0.05)
                         for n in range(1, 251)])  # fmt: skip
    for _ in range(sims):
        tops = stream(rng, 0.0, 24, 250)
        ours += run(tops, tolerance=0.99).decision == "leakage"  # never stop for "no evidence": worst case
        # the tempting alternative: an exact binomial test re-run after every item, stopping at p < 0.05
        hits = np.cumsum(tops)
        naive += bool((hits >= critical).any())
    assert ours / sims <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims)
    assert naive / sims > 0.10  # peeking a fixed-sample test inflates its error: why we do not


def test_large_leakage_is_decided_within_a_few_items() -> None:
    rng = np.random.default_rng(1)
    used = [run(stream(rng, 0.3, 24, 400)).decided_at or 400 for _ in range(100)]
    assert np.median(used) <= 15
    assert all(run(stream(rng, 0.3, 24, 400)).decision == "leakage" for _ in range(20))


def test_clean_model_stops_with_no_evidence_and_interval_below_tolerance() -> None:
    rng = np.random.default_rng(2)
    results = [run(stream(rng, 0.0, 24, 600)) for _ in range(100)]
    assert sum(t.decision == "no_evidence" for t in results) >= 90
    for t in results:
        if t.decision == "no_evidence":
            assert t.interval()[1] <= 0.1
    assert np.median([t.decided_at for t in results if t.decided_at]) < 200


def test_interval_covers_the_truth_at_every_step() -> None:
    rng = np.random.default_rng(3)
    misses = 0
    for _ in range(200):
        t = SequentialTest(alpha=0.05, tolerance=0.5)
        missed = False
        for top in stream(rng, 0.2, 12, 150):
            t.update(12, top)
            lo, hi = t.interval()
            missed |= not lo <= 0.2 <= hi
        misses += missed
    assert misses / 200 <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200)


def test_mixed_k_and_bad_arguments() -> None:
    t = SequentialTest()
    for k in (24, 4, 120, 6):
        t.update(k, True)
    assert t.decision == "leakage" and t.decided_at is not None and t.e_value_null() >= 20
    with pytest.raises(ValueError):
        SequentialTest(alpha=0)
    with pytest.raises(ValueError):
        SequentialTest(tolerance=1.5)


def test_estimate_is_chance_corrected() -> None:
    t = SequentialTest(tolerance=0.5)
    for i in range(240):
        t.update(4, i % 2 == 0)  # top-1 half the time with K = 4: f + (1 - f) / 4 = 0.5 -> f = 1/3
    assert t.estimate() == pytest.approx(1 / 3, abs=0.01)
    lo, hi = t.interval()
    assert lo < 1 / 3 < hi

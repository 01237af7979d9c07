from __future__ import annotations

import math

import pytest

from auditor.analysis.detector import SpanScore, item_stats
from auditor.analysis.stats import poisson_binomial_sf
from auditor.errors import AlignmentError

PERMS = [(0, 1), (1, 0), (0, 1), (1, 0)]  # shapes only matter for bookkeeping here


def spans(*scores: float) -> list[SpanScore]:
    return [SpanScore(s, 5, 10) for s in scores]


def test_rank_p_value_and_margin() -> None:
    v = item_stats("i", "s", PERMS, spans(-10.0, -9.0, -12.0, -8.0))
    assert (v.rank, v.top1, v.p_value) == (3, False, 0.75)
    assert v.margin == pytest.approx(-2.0)


def test_tie_with_best_counts_as_rank_one() -> None:
    v = item_stats("i", "s", PERMS, spans(-8.0, -9.0, -8.0, -10.0))
    assert v.rank == 1 and v.top1 and v.p_value == 0.25


def test_published_strictly_best() -> None:
    v = item_stats("i", "s", PERMS, spans(-1.0, -9.0, -8.0, -10.0))
    assert v.top1 and v.margin == pytest.approx(7.0)


def test_inconsistent_boundary_is_refused() -> None:
    with pytest.raises(AlignmentError, match="different number of tokens"):
        item_stats("i", "s", PERMS[:2], [SpanScore(-1.0, 5, 3), SpanScore(-2.0, 6, 3)])


def test_binomial_matches_closed_form() -> None:
    n, p = 30, 1 / 24
    for k in (0, 1, 3, 10, 30):
        exact = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
        assert poisson_binomial_sf(k, [p] * n) == pytest.approx(exact, rel=1e-9)


def test_poisson_binomial_mixed_probabilities() -> None:
    probs = [0.5, 0.25]
    assert poisson_binomial_sf(2, probs) == pytest.approx(0.125)
    assert poisson_binomial_sf(1, probs) == pytest.approx(1 - 0.5 * 0.75)


def test_dataset_top1_test_is_the_verdicts_own() -> None:
    """The top-1 count test lives in one place, the dataset decision (verdicts.summarize); the verdict's own
    test is the permutation test (auditor/analysis/combined.py)."""
    from auditor.analysis.verdicts import Verdict, VerdictTest, exchangeable_null, summarize

    null = exchangeable_null()
    leaked = [item_stats(f"l{i}", "s", PERMS, spans(0.0, -1.0, -2.0, -3.0)) for i in range(10)]
    clean = [item_stats(f"c{i}", "s", PERMS, spans(-3.0, -1.0, -2.0, 0.0)) for i in range(30)]
    d = summarize(leaked + clean, null)
    assert (d.n_units, d.top1, d.chance) == (40, 10, 0.25)
    assert 0.3 < d.p_binomial < 0.7 and d.verdict is Verdict.NO_EVIDENCE
    none = summarize(clean, null)
    assert none.top1 == 0 and none.p_binomial == 1.0
    strong = summarize(leaked, null)
    assert strong.p_binomial == pytest.approx(0.25**10) and strong.verdict is Verdict.LEAKAGE
    assert strong.permutation is not None and strong.p_verdict == strong.permutation.p_value < 1e-3
    assert strong.test is VerdictTest.PERMUTATION


def test_rank_sum_exact_and_normal_agree() -> None:
    from auditor.analysis.stats import rank_sum_p_value

    assert rank_sum_p_value([1], [4]) == pytest.approx(0.25)
    assert rank_sum_p_value([1, 1], [4, 4]) == pytest.approx(1 / 16)
    assert rank_sum_p_value([4, 4], [4, 4]) == pytest.approx(1.0)
    ranks, ks = [8] * 300, [24] * 300  # mildly better than the null mean 12.5
    exact = rank_sum_p_value(ranks, ks)
    approx = rank_sum_p_value(ranks * 3, ks * 3)  # large: normal approximation
    assert exact < 1e-10 and approx < exact


def test_leaked_fraction_and_interval() -> None:
    from auditor.analysis.stats import leaked_fraction

    est, lo, hi = leaked_fraction(0, 100, 1 / 24)
    assert (est, lo, hi) == (0.0, 0.0, 0.0)  # fewer top-1 items than chance alone would give
    est, lo, hi = leaked_fraction(6, 100, 1 / 24)
    assert 0.0 < est < hi < 0.15 and lo == 0.0
    est, lo, hi = leaked_fraction(52, 100, 1 / 24)
    assert est == pytest.approx((0.52 - 1 / 24) / (1 - 1 / 24)) and lo < est < hi


def test_fisher_greater() -> None:
    from auditor.analysis.stats import fisher_greater

    assert fisher_greater(10, 10, 0, 10) == pytest.approx(1 / math.comb(20, 10))
    assert fisher_greater(5, 10, 5, 10) > 0.5
    assert fisher_greater(0, 10, 10, 10) == pytest.approx(1.0)


def test_benjamini_hochberg() -> None:
    from auditor.analysis.stats import benjamini_hochberg

    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])


def test_wilcoxon_greater() -> None:
    from auditor.analysis.stats import wilcoxon_greater

    assert wilcoxon_greater([1.0] * 20) < 1e-4
    assert wilcoxon_greater([-1.0] * 20) > 0.999
    assert 0.3 < wilcoxon_greater([1.0, -1.0] * 10) < 0.7

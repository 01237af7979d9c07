from __future__ import annotations

import math

import pytest

from auditor.analysis.detector import SpanScore, judge_dataset, judge_item
from auditor.analysis.stats import poisson_binomial_sf
from auditor.errors import AlignmentError

PERMS = [(0, 1), (1, 0), (0, 1), (1, 0)]  # shapes only matter for bookkeeping here


def spans(*scores: float) -> list[SpanScore]:
    return [SpanScore(s, 5, 10) for s in scores]


def test_rank_p_value_and_margin() -> None:
    v = judge_item("i", "s", PERMS, spans(-10.0, -9.0, -12.0, -8.0))
    assert (v.rank, v.leaked, v.p_value) == (3, False, 0.75)
    assert v.margin == pytest.approx(-2.0)


def test_tie_with_best_counts_as_rank_one() -> None:
    v = judge_item("i", "s", PERMS, spans(-8.0, -9.0, -8.0, -10.0))
    assert v.rank == 1 and v.leaked and v.p_value == 0.25


def test_published_strictly_best() -> None:
    v = judge_item("i", "s", PERMS, spans(-1.0, -9.0, -8.0, -10.0))
    assert v.leaked and v.margin == pytest.approx(7.0)


def test_inconsistent_boundary_is_refused() -> None:
    with pytest.raises(AlignmentError, match="different number of tokens"):
        judge_item("i", "s", PERMS[:2], [SpanScore(-1.0, 5, 3), SpanScore(-2.0, 6, 3)])


def test_binomial_matches_closed_form() -> None:
    n, p = 30, 1 / 24
    for k in (0, 1, 3, 10, 30):
        exact = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
        assert poisson_binomial_sf(k, [p] * n) == pytest.approx(exact, rel=1e-9)


def test_poisson_binomial_mixed_probabilities() -> None:
    probs = [0.5, 0.25]
    assert poisson_binomial_sf(2, probs) == pytest.approx(0.125)
    assert poisson_binomial_sf(1, probs) == pytest.approx(1 - 0.5 * 0.75)


def test_dataset_verdict() -> None:
    leaked = [judge_item(f"l{i}", "s", PERMS, spans(0.0, -1.0, -2.0, -3.0)) for i in range(10)]
    clean = [judge_item(f"c{i}", "s", PERMS, spans(-3.0, -1.0, -2.0, 0.0)) for i in range(30)]
    d = judge_dataset(leaked + clean, n_failed=2)
    assert (d.n_items, d.n_leaked, d.n_failed) == (40, 10, 2)
    assert d.leak_rate == 0.25 and d.chance_rate == 0.25
    assert 0.3 < d.p_value < 0.7
    none = judge_dataset(clean, n_failed=0)
    assert none.n_leaked == 0 and none.p_value == 1.0
    strong = judge_dataset(leaked, n_failed=0)
    assert strong.p_value == pytest.approx(0.25**10)


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

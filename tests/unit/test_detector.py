from __future__ import annotations

import math

import pytest

from auditor.detector import SpanScore, judge_dataset, judge_item
from auditor.errors import AlignmentError
from auditor.stats import poisson_binomial_sf

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

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from auditor.analysis.detector import SpanScore, item_stats
from auditor.analysis.familiarity import familiarity_p, familiarity_value, product_p
from auditor.prompts.orderings import orderings_for

PERMS = orderings_for(4, max_orderings=120, seed=0, item_id="x")


def verdict(i: int, scores: list[float], min_k: float):  # type: ignore[no-untyped-def]
    return item_stats(f"q{i}", "s", PERMS, [SpanScore(s, 3, 5) for s in scores], min_k=min_k)


def test_product_p_is_exact_under_its_null() -> None:
    """The rank uniform on 1..K and p_f uniform, independent: P(product_p <= a) = a at every level."""
    rng = np.random.default_rng(0)
    k, n = 24, 200_000
    ranks, u = rng.integers(1, k + 1, n), rng.random(n)
    p = np.array([product_p(int(r), k, float(x)) for r, x in zip(ranks[:20_000], u[:20_000], strict=True)])
    for a in (0.01, 1 / 24, 0.1, 0.5):
        assert abs(np.mean(p <= a) - a) < 4 * np.sqrt(a * (1 - a) / len(p)) + 1e-3
    assert product_p(1, k, 1.0) == pytest.approx(sum(1 / r for r in range(1, k + 1)) / k)  # rank 1 alone: H_K / K
    assert product_p(k, k, 1.0) == 1.0
    assert product_p(1, k, 0.1) < product_p(2, k, 0.1) < product_p(2, k, 0.2)  # monotone in both


def test_familiarity_p_compares_with_the_no_preference_items() -> None:
    rng = np.random.default_rng(1)
    items = []
    for i in range(200):
        s = rng.normal(-50, 2, size=24)
        items.append(verdict(i, [float(x) for x in s], min_k=float(rng.normal(-10, 1))))
    p = familiarity_p(items)
    pool = [v for v in items if 2 * v.rank_random > 24]
    assert 80 < len(pool) < 120
    top = max(items, key=lambda v: v.min_k)
    bottom = min(items, key=lambda v: v.min_k)
    in_pool = top in pool  # an item of the pool counts itself
    assert p[top.id] == pytest.approx((1 + in_pool) / (len(pool) + 1))  # nothing else in the pool at or above it
    assert p[bottom.id] == pytest.approx(1.0)  # everything at or above it (itself counted if in the pool)
    # valid under the null: ranks independent of min_k, so items outside the pool get uniform p-values
    outside = [p[v.id] for v in items if 2 * v.rank_random <= 24]
    assert 0.35 < float(np.mean(outside)) < 0.65


def test_missing_values_give_no_familiarity_evidence() -> None:
    a = verdict(0, [0.0] + [-1.0] * 23, min_k=float("nan"))
    b = verdict(1, [-2.0] + [-1.0 - j / 100 for j in range(23)], min_k=-3.0)  # published order last
    p = familiarity_p([a, b])
    assert p[a.id] == 1.0
    # with references: the gain over their mean; an item a reference lacks has no value
    ref1 = {b.id: dataclasses.replace(b, min_k=-5.0)}
    ref2 = {b.id: dataclasses.replace(b, min_k=-4.0)}
    assert familiarity_value(b, (ref1, ref2)) == pytest.approx(1.5)
    assert np.isnan(familiarity_value(a, (ref1,)))


def _dataset(n: int, seed: int, *, natural: float = 0.0, leaked: int = 0, lift: float = 10.0, gain: float = 3.0):  # type: ignore[no-untyped-def]
    """n items of 24 orderings; `natural` lifts the published order of every item (natural order, no
    familiarity); the first `leaked` items get `lift` nats more and a Min-K% higher by `gain`."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = rng.normal(-50, 2, size=24)
        s[0] += natural + (lift if i < leaked else 0.0)
        out.append(verdict(i, [float(x) for x in s], min_k=float(rng.normal(-10, 1) + (gain if i < leaked else 0.0))))
    return out


def test_default_without_reference_halves_natural_order_and_keeps_familiar_leaks() -> None:
    from auditor.analysis.verdicts import decide, decide_all, exchangeable_null

    null = exchangeable_null(alpha=0.05)
    clean = _dataset(3000, seed=3, natural=2.0)  # natural order: the published order first far above 1/24
    rank1 = np.mean([v.rank_random == 1 for v in clean])
    flagged_a = np.mean([t.scenario == "a" for t in decide_all(clean, null).values()])
    assert rank1 > 0.08  # what the rank alone would flag
    assert abs(flagged_a - rank1 / 2) < 0.02  # the gate keeps half of them: familiarity is independent
    mixed = _dataset(400, seed=4, leaked=100)
    tests = decide_all(mixed, null)
    leaks, others = mixed[:100], mixed[100:]
    assert np.mean([tests[v.id].scenario == "a" for v in leaks]) > 0.9
    assert np.mean([tests[v.id].flagged for v in others]) < 0.05
    assert all(tests[v.id].p_familiar is not None for v in mixed)
    assert decide(mixed[0], null).p_familiar is None  # one item outside a dataset: the ranks alone


def test_default_with_references_combines_rank_and_familiarity_gain() -> None:
    from auditor.analysis.verdicts import control_null, decide_all

    audited = _dataset(3000, seed=5)
    reference = [dataclasses.replace(v, min_k=v.min_k + float(g)) for v, g in
                 zip(audited, np.random.default_rng(6).normal(0, 1, 3000), strict=True)]  # fmt: skip
    null = control_null([(reference, "ref")], alpha=0.05)
    tests = decide_all(audited, null)
    rate = np.mean([t.scenario == "a" for t in tests.values()])
    assert abs(rate - 0.05 * 5 / 6) < 0.012  # the product's exact size, 1/24
    # a leak whose published order is only second is still flagged when its text gained a lot of likelihood
    leak = verdict(99_999, [-50.0, -49.0] + [-60.0] * 22, min_k=-2.0)
    ref = {leak.id: dataclasses.replace(leak, min_k=-10.0)}
    null2 = control_null([([*reference, ref[leak.id]], "ref")], alpha=0.05)
    t = decide_all([*audited, leak], null2)[leak.id]
    assert leak.rank_random == 2 and t.scenario == "a" and t.p_a < 1 / 24


def test_without_no_preference_items_the_ranks_decide_alone() -> None:
    """Every published order first (a wholly leaked set): nothing to compare familiarity with, so the items are
    judged as before familiarity existed, and flagged on rank 1."""
    from auditor.analysis.verdicts import decide_all, exchangeable_null

    items = [verdict(i, [0.0] + [-5.0 - j for j in range(23)], min_k=-10.0 + i / 10) for i in range(12)]
    assert set(familiarity_p(items).values()) == {None}
    tests = decide_all(items, exchangeable_null())
    assert all(t.scenario == "a" and t.p_familiar is None for t in tests.values())

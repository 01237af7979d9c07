from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from auditor.analysis.detector import SpanScore, item_stats
from auditor.analysis.itemtests import levels
from auditor.analysis.lift import LIFT_GATE, LIFT_GATE_NO_REFERENCE, gated_p, lift, lift_p, min_pool_for
from auditor.analysis.verdicts import control_null, decide, decide_all, exchangeable_null
from auditor.prompts.orderings import orderings_for

PERMS = orderings_for(4, max_orderings=120, seed=0, item_id="x")
ALPHA_B = levels(0.05, paired=False, familiar=True, lifted=True)[1]  # the lift's level without a reference: 1/48
ALPHA_B_PAIRED = levels(0.05, paired=True, familiar=True, lifted=True)[1]  # with references: 1/80


def verdict(i: int, scores: np.ndarray, min_k: float):  # type: ignore[no-untyped-def,type-arg]
    return item_stats(f"q{i}", "s", PERMS, [SpanScore(float(s), 3, 5) for s in scores], min_k=min_k)


def _dataset(n: int, seed: int, *, shuffled: int = 0, rise: float = 12.0, gain: float = 3.0):  # type: ignore[no-untyped-def]
    """n clean items of 24 orderings with per-item spread; the first `shuffled` items were trained in
    ordering 7 (not the published one): it rises by `rise` nats and the text's Min-K% by `gain`."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = rng.normal(-50, rng.uniform(1, 3), size=24)
        if i < shuffled:
            s[7] += rise
        out.append(verdict(i, s, float(rng.normal(-10, 1) + (gain if i < shuffled else 0.0))))
    return out


def test_lift_is_the_height_above_the_median_and_names_the_highest() -> None:
    best, t = lift(np.array([1.0, 5.0, 2.0, 3.0]))
    assert (best, t) == (1, pytest.approx(2.5))
    assert gated_p(0.2, 0.01, 0.25) == pytest.approx(0.0025) and gated_p(0.3, 0.01, 0.25) == 1.0
    # the comparison set is the unfamiliar items only (p_familiar > 0.5); an item with no p_familiar stays out
    p = lift_p({"a": 1.0, "b": 2.0, "c": 9.0, "d": 0.5}, {"a": 0.9, "b": 0.7, "c": 0.1, "d": None})
    assert p == {"a": 1.0, "b": pytest.approx(2 / 3), "c": pytest.approx(1 / 3), "d": 1.0}


def test_clean_dataset_is_flagged_under_b_at_about_its_stated_size() -> None:
    """No leak, familiarity independent of the scores: P(flag b) = q * alpha_b / q (best not published)."""
    tests = decide_all(_dataset(4000, seed=1), exchangeable_null(alpha=0.05))
    rate = np.mean([t.scenario == "b" for t in tests.values()])
    assert all(t.p_lift is not None for t in tests.values())
    assert rate < ALPHA_B + 3 * np.sqrt(ALPHA_B / 4000) and rate > 0.001  # a real test, at its size


def test_heavy_tailed_scores_keep_the_size_where_the_gaussian_z_test_does_not() -> None:
    """Student-t (2 df) scores with a scale of their own per item: the z test's Gaussian null flags far more
    than alpha_b; the lift, compared across items and gated on an independent familiarity, keeps its size."""
    rng = np.random.default_rng(5)
    items = [verdict(i, -50 + rng.uniform(0.5, 5) * rng.standard_t(2, size=24), float(rng.normal(-10, 1)))
             for i in range(4000)]  # fmt: skip
    lifted = np.mean([t.scenario == "b" for t in decide_all(items, exchangeable_null()).values()])
    gaussian = np.mean([decide(v, exchangeable_null()).scenario == "b" for v in items])
    assert gaussian > 0.1
    assert lifted < ALPHA_B + 3 * np.sqrt(ALPHA_B / 4000)


def test_items_are_compared_with_items_of_as_many_orderings() -> None:
    """Half 3-option (6 orderings), half 4-option (24) clean items: the maximum of 24 orderings rises further,
    so each group keeps alpha_b only when compared within itself (unstratified: 1.7% vs 0.4%)."""
    p6 = orderings_for(3, max_orderings=120, seed=0, item_id="x")
    rng = np.random.default_rng(6)
    items = []
    for i in range(6000):
        perms = PERMS if i % 2 else p6
        s = rng.normal(-50, 2, size=len(perms))
        items.append(item_stats(f"q{i}", "s", perms, [SpanScore(float(x), 3, 5) for x in s],
                                min_k=float(rng.normal(-10, 1))))  # fmt: skip
    tests = decide_all(items, exchangeable_null())
    for k in (6, 24):
        rate = np.mean([tests[v.id].scenario == "b" for v in items if v.n_orderings == k])
        assert rate < ALPHA_B + 3 * np.sqrt(ALPHA_B / 3000), k
    # a's lift, the highest, is compared with its own group only (itself), c's with c and b
    p = lift_p({"a": 5.0, "b": 1.0, "c": 2.0}, dict.fromkeys("abc", 0.9), groups={"a": 6, "b": 24, "c": 24})
    assert p == {"a": 1.0, "b": 1.0, "c": pytest.approx(2 / 3)}


def test_shuffled_leaks_are_flagged_with_their_trained_order_named() -> None:
    items = _dataset(400, seed=2, shuffled=60)
    tests = decide_all(items, exchangeable_null(alpha=0.05))
    leaks, clean = items[:60], items[60:]
    named = [tests[v.id].scenario == "b" and tests[v.id].b_ordering == 7 for v in leaks]
    assert np.mean(named) > 0.6
    assert np.mean([tests[v.id].scenario == "b" for v in clean]) < 0.02
    # the same rise without familiarity (a clean item's natural favourite ordering) is not flagged
    flat = dataclasses.replace(leaks[0], id="natural", min_k=-12.0)
    assert decide_all([*items, flat], exchangeable_null())["natural"].scenario is None
    # outside a dataset (no p-values to compare with) the Gaussian z test decides, as before
    assert decide(leaks[0], exchangeable_null()).p_lift is None


def test_with_a_reference_an_ordering_both_models_prefer_is_not_a_leak() -> None:
    """Natural order shared by the audited model and its reference: the audited scores alone name it, the
    deviation from the reference does not."""
    rng = np.random.default_rng(3)
    audited, reference = [], []
    for i in range(400):
        base = rng.normal(-50, 2, size=24)
        favourite = -50.0 + 15.0 * (i < 40)  # 40 items read best in ordering 5, for any model
        base[5] = max(base[5], favourite)
        mk = float(rng.normal(-10, 1))
        audited.append(verdict(i, base + rng.normal(0, 0.5, size=24), mk + 2.0 * (i < 40)))
        reference.append(verdict(i, base, mk))
    alone = decide_all(audited, exchangeable_null())
    paired = decide_all(audited, control_null([(reference, "ref")]))
    favourites = [v.id for v in audited[:40]]
    assert sum(alone[i].scenario == "b" for i in favourites) > 10  # familiar and risen: flagged without a reference
    assert sum(paired[i].scenario == "b" for i in favourites) <= 2


def test_without_unfamiliar_items_scenario_b_falls_back_to_the_gaussian_test() -> None:
    items = [verdict(i, np.array([0.0] + [-5.0 - j for j in range(23)]), min_k=-10.0 + i / 10) for i in range(12)]
    tests = decide_all(items, exchangeable_null())
    assert all(t.p_lift is None and t.p_familiar is None for t in tests.values())
    # too few unfamiliar items for p_lift to reach alpha_b / q: the z test again (an 8-item dataset)
    assert min_pool_for(ALPHA_B, LIFT_GATE_NO_REFERENCE) == 7 and min_pool_for(ALPHA_B_PAIRED, LIFT_GATE) == 19
    small = decide_all(_dataset(8, seed=4, shuffled=3), exchangeable_null())
    assert all(t.p_lift is None and t.p_familiar is not None for t in small.values())
    big = decide_all(_dataset(120, seed=4, shuffled=3), exchangeable_null())
    assert all(t.p_lift is not None for t in big.values())


def test_an_item_both_scenarios_flag_is_named_b_when_the_risen_ordering_starts_elsewhere() -> None:
    """With a reference, a very familiar item passes a's product test whatever its published rank. When the
    lift names an ordering that begins with another option than the published order (ordering 7 starts with
    option 1), the rise is not the published order's: scenario b, that ordering named. When it begins with the
    published order's first option (ordering 3: 0, 2, 3, 1) it cannot be told from a published-order leak,
    whose highest deviation is often a sibling sharing its first option: scenario a."""
    assert PERMS[7][0] != 0 and PERMS[3][0] == 0
    rng = np.random.default_rng(7)
    audited, reference = [], []
    for i in range(800):
        base = rng.normal(-50, 2, size=24)
        mk = float(rng.normal(-10, 1))
        s = base + rng.normal(0, 0.5, size=24)
        if i < 30:
            s[7 if i < 15 else 3] += 12.0  # trained in ordering 7 (first 15) or 3 (next 15)
        audited.append(verdict(i, s, mk + 4.0 * (i < 30)))
        reference.append(verdict(i, base, mk + float(rng.normal(0, 0.5))))
    tests = decide_all(audited, control_null([(reference, "ref")]))
    other, sibling = [tests[v.id] for v in audited[:15]], [tests[v.id] for v in audited[15:30]]
    both = [t for t in other if t.p_a <= 0.05 * 3 / 4 and t.p_b <= ALPHA_B_PAIRED]  # a's test passed too
    assert len(both) >= 5 and all(t.scenario == "b" and t.b_ordering == 7 for t in both)
    assert sum(t.scenario == "b" and t.b_ordering == 7 for t in other) == 15
    assert (
        all(t.scenario == "a" for t in sibling if t.p_a <= 0.05 * 3 / 4)
        and sum(t.scenario == "a" for t in sibling) >= 5
    )
    assert np.mean([tests[v.id].scenario == "b" for v in audited[30:]]) < ALPHA_B_PAIRED

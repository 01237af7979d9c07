from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from auditor.analysis.assess import assess
from auditor.analysis.detector import SpanScore, degenerate_reason, item_stats
from auditor.analysis.verdicts import best_case_p, control_null, decide, exchangeable_null, representatives, summarize
from auditor.input.items import Item
from auditor.prompts.orderings import orderings_for

PERMS = orderings_for(4, max_orderings=120, seed=0, item_id="x")


def verdict(i: int, scores: list[float], subject: str = "s"):  # type: ignore[no-untyped-def]
    return item_stats(f"q{i}", subject, PERMS, [SpanScore(s, 3, 5) for s in scores])


def exchangeable(n: int, seed: int, boost: float = 0.0, k_boost: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = list(rng.normal(-50, 2, size=24))
        s[k_boost] += boost
        out.append(verdict(i, [float(x) for x in s]))
    return out


def test_exchangeable_null_controls_the_false_positive_rate() -> None:
    null = exchangeable_null(alpha=0.05)
    clean = exchangeable(4000, seed=1)
    decisions = [decide(v, null) for v in clean]
    rate = np.mean([d.flagged for d in decisions])
    assert 0.035 < rate < 0.06  # 1/24 for scenario a + at most 0.05/6 for b
    assert abs(np.mean([d.scenario == "a" for d in decisions]) - 1 / 24) < 0.01  # exact: rank 1 of 24
    assert np.mean([d.scenario == "b" for d in decisions]) < 0.015  # 0.05/6 = 0.0083; 4000 items: SE 0.0015
    leaked = exchangeable(400, seed=2, boost=8.0)
    assert np.mean([decide(v, null).scenario == "a" for v in leaked]) > 0.9
    shuffled = exchangeable(400, seed=3, boost=12.0, k_boost=7)  # a 6-sd outlier in another order
    found = [decide(v, null) for v in shuffled]
    assert np.mean([d.scenario == "b" and d.b_ordering == 7 for d in found]) > 0.9  # flagged, order named


def natural_pair(n: int, seed: int, lift: float = 2.0, leak: float = 0.0):  # type: ignore[no-untyped-def]
    """An audited model and a clean reference that share each item's natural-order preference (a random
    per-ordering component plus a lift of the published order), each with its own noise."""
    rng = np.random.default_rng(seed)
    audited, reference = [], []
    for i in range(n):
        shared = rng.normal(0, 2, size=24)
        shared[0] += lift
        a = -50 + shared + rng.normal(0, 0.7, size=24)
        a[0] += leak
        r = -60 + shared + rng.normal(0, 0.7, size=24)
        audited.append(verdict(i, [float(x) for x in a]))
        reference.append(verdict(i, [float(x) for x in r]))
    return audited, reference


def test_control_null_removes_natural_order() -> None:
    audited, reference = natural_pair(2000, seed=4)
    alone = [decide(v, exchangeable_null()).flagged for v in audited]
    paired = control_null([(reference, "ref")])
    with_ref = [decide(v, paired).flagged for v in audited]
    assert np.mean(alone) > 0.12  # the exchangeable null over-flags natural order
    assert np.mean(with_ref) < 0.04  # paired with the same item on the reference it does not
    leaked, reference = natural_pair(500, seed=5, leak=6.0)
    paired = control_null([(reference, "ref")])
    assert np.mean([decide(v, paired).scenario == "a" for v in leaked]) > 0.8


def test_paired_rank_in_nats_finds_a_leak_the_reference_also_prefers() -> None:
    """The canary's case: the reference already prefers the published order strongly; fine-tuning adds nats on
    top. In nats the lift shows; in standardised scores both published orders sit near the z cap (sqrt(K)) and
    the lift vanished (the first version kept 0.19-0.33 of such leaks on the canaries, nats 0.51-0.67)."""
    from auditor.analysis.itemtests import item_test

    rng = np.random.default_rng(9)
    audited, clean, reference = [], [], []
    for i in range(300):
        shared = rng.normal(0, 1, size=24)
        shared[0] += 10.0  # strong natural order: the published order is far on top for both models
        r = -60 + shared + rng.normal(0, 0.3, size=24)
        a = -50 + shared + rng.normal(0, 0.3, size=24)
        clean.append(verdict(i, [float(x) for x in a]))
        a[0] += 4.0  # the leak: 4 nats more on the published order
        audited.append(verdict(i, [float(x) for x in a]))
        reference.append(verdict(i, [float(x) for x in r]))
    null = control_null([(reference, "ref")])
    nats = np.mean([decide(v, null).scenario == "a" for v in audited])
    standardised = np.mean([item_test(v, null.reference_for(v), null.alpha).scenario == "a" for v in audited])
    assert nats > 0.9 and standardised < 0.2
    assert np.mean([decide(v, null).flagged for v in clean]) < 0.05  # the same items without the leak


def test_several_references_and_missing_ones() -> None:
    audited, ref1 = natural_pair(300, seed=6)
    _, ref2 = natural_pair(300, seed=6)
    null = control_null([(ref1, "r1"), (ref2[:200], "r2")])
    assert null.reference_for(audited[10]) is not None and null.reference_for(audited[250]) is None
    assert decide(audited[250], null).p_paired is None
    assert null.to_json()["scenario_a"]["references"] == 2


def test_self_as_control_is_no_evidence_and_leak_is_leakage() -> None:
    base, _ = natural_pair(300, seed=7, lift=1.5)
    itself = summarize(base, control_null([(base, "self")]))
    assert itself.verdict == "no_evidence" and itself.p_verdict == 1.0  # every deviation is 0
    leaked = [verdict(i, [v.scores[0] + (10 if i % 2 else 0), *v.scores[1:]]) for i, v in enumerate(base)]
    result = summarize(leaked, control_null([(base, "base")]))
    assert result.verdict == "leakage" and result.p_control is not None and result.p_control < 1e-3


def test_shared_option_lists_count_once() -> None:
    vs = exchangeable(10, seed=6)
    groups = {v.id: "g" for v in vs[:6]}
    reps = representatives(vs, groups)
    assert len(reps) == 5 and sum(v.id in groups for v in reps) == 1


def test_assess_end_to_end_with_control_file(tmp_path: Path) -> None:
    items = [Item(f"q{i}", f"Question {i}?", (f"a{i}", f"b{i}", f"c{i}", f"d{i}"), 0, "s", "x", i) for i in range(200)]
    base = exchangeable(200, seed=7)
    report = {"items": [{"id": v.id, "subject": v.subject, "scores": v.scores, "orderings": [list(p) for p in PERMS],
                         "rank_random": v.rank_random} for v in base]}  # fmt: skip
    (tmp_path / "report.json").write_text(json.dumps(report))
    same = assess(base, items, control=tmp_path)
    assert same.null.kind == "control" and same.summary.verdict == "no_evidence"
    assert "no evidence" in same.summary.sentence
    alone = assess(base, items)
    assert alone.null.kind == "exchangeable" and "cannot be told apart" in alone.summary.sentence  # no false certainty


def clean_items(n: int, k: int, seed: int):  # type: ignore[no-untyped-def]
    """n items whose K orderings score independently (no preference): what a random-noise server gives."""
    rng = np.random.default_rng(seed)
    perms = orderings_for({2: 2, 6: 3, 24: 4, 120: 5}[k], max_orderings=120, seed=0, item_id="x")
    return [item_stats(f"q{i}", "s", perms, [SpanScore(float(x), 3, 5) for x in rng.normal(-50, 2, size=k)])
            for i in range(n)]  # fmt: skip


def test_every_option_count_keeps_the_stated_false_positive_rate() -> None:
    """Exact rank p-values per K: 2 and 6 orderings can never reach 5% (p >= 1/6), 24 flags rank 1 (1/24)."""
    items = {k: clean_items(3000, k, seed=k) for k in (2, 6, 24)}
    null = exchangeable_null(alpha=0.05)
    rates = {k: float(np.mean([decide(v, null).flagged for v in vs])) for k, vs in items.items()}
    assert rates[2] == 0.0 and rates[6] < 0.015  # scenario a impossible; only scenario b's 0.83% remains
    assert 0.03 < rates[24] < 0.065, rates
    js = null.to_json()
    # the dataset rule's levels: a's rank-1-and-familiar test has size 5/6 * 1/2 of alpha, b's lift the same
    assert js["scenario_a"]["size"] == pytest.approx(0.05 / 2.4) == js["scenario_b"]["alpha"]
    assert js["scenario_b"]["alpha_fallback"] == pytest.approx(0.05 / 6) and json.dumps(js, allow_nan=False)
    paired = control_null([(items[24][:50], "ref")]).to_json()  # with references: 3/4 and 1/4, the whole alpha
    assert paired["scenario_a"]["size"] + paired["scenario_b"]["alpha"] == pytest.approx(0.05)


def test_nothing_scored_and_too_few_to_decide_are_verdicts_of_their_own() -> None:
    null = exchangeable_null()
    assert summarize([], null).verdict == "nothing_scored"
    assert summarize([], null, n_degenerate=5).verdict == "too_few_scored"
    two = [verdict(i, [-1.0] + [-10.0] * 23) for i in range(2)]  # published on top in both, yet p >= 1/576
    s = summarize(two, null)
    assert s.verdict == "too_few_scored" and "too few items" in s.sentence
    assert best_case_p(two, null) == pytest.approx(1 / 24**2) and best_case_p(two * 3, null) == 1 / 20_001
    three = [verdict(i, [-1.0] + [-10.0] * 23) for i in range(3)]
    assert summarize(three, null).verdict == "leakage"
    noise = clean_items(60, 2, seed=3)  # 60 two-option items: enough units to decide
    assert summarize(noise, exchangeable_null()).verdict == "no_evidence"


def test_degenerate_scores_are_recognised() -> None:
    from providers.base import LogprobRecord

    def rec(*lps: float) -> LogprobRecord:
        return LogprobRecord(tokens=("<s>",) + ("x",) * len(lps), logprobs=(None, *lps), offsets=(0,) * (len(lps) + 1))

    assert "all 3 orderings scored the same" in str(degenerate_reason([-4.0, -4.0, -4.0], [rec(-1.0, -3.0)]))
    assert "same logprob (-1)" in str(degenerate_reason([-4.0, -5.0], [rec(-1.0, -1.0), rec(-1.0)]))
    assert degenerate_reason([-4.0, -5.0], [rec(-1.0, -3.0), rec(-2.0)]) is None

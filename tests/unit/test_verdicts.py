from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from auditor.analysis.assess import assess
from auditor.analysis.detector import SpanScore, degenerate_reason, item_stats
from auditor.analysis.verdicts import (
    best_case_p,
    control_null,
    decide,
    exchangeable_null,
    representatives,
    summarize,
)
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
    null = exchangeable_null(24, alpha=0.05)
    clean = exchangeable(4000, seed=1)
    rate = np.mean([decide(v, null).flagged for v in clean])
    assert 0.035 < rate < 0.065
    leaked = exchangeable(400, seed=2, boost=8.0)
    assert np.mean([decide(v, null).scenario == "a" for v in leaked]) > 0.9
    shuffled = exchangeable(400, seed=3, boost=12.0, k_boost=7)  # a 6-sd outlier in another order
    assert np.mean([decide(v, null).scenario == "b" for v in shuffled]) > 0.9


def test_control_null_calibrates_to_the_control() -> None:
    rng = np.random.default_rng(4)
    natural = []  # a model with a natural-order preference: published order lifted a little
    for i in range(2000):
        s = list(rng.normal(-50, 2, size=24))
        s[0] += 2.0
        natural.append(verdict(i, [float(x) for x in s]))
    ex = exchangeable_null(24)
    ctrl = control_null(natural[:1000])
    assert np.mean([decide(v, ex).flagged for v in natural[1000:]]) > 0.1  # the naive null over-flags
    assert np.mean([decide(v, ctrl).flagged for v in natural[1000:]]) < 0.08  # the control fixes it


def test_self_as_control_is_no_evidence_and_leak_is_leakage() -> None:
    rng = np.random.default_rng(5)
    base = []
    for i in range(300):
        s = list(rng.normal(-50, 2, size=24))
        s[0] += 1.5
        base.append(verdict(i, [float(x) for x in s]))
    assert summarize(base, control_null(base)).verdict == "no_evidence"
    leaked = [verdict(v.id and i, [v.scores[0] + (10 if i % 2 else 0), *v.scores[1:]]) for i, v in enumerate(base)]
    result = summarize(leaked, control_null(base))
    assert result.verdict == "leakage" and result.p_control is not None and result.p_control < 1e-6


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
    """Thresholds per K: before, all items got the largest K's (2 options: 100% flagged, 3 options: 14%)."""
    items = {k: clean_items(3000, k, seed=k) for k in (2, 6, 24)}
    null = exchangeable_null([v.n_orderings for vs in items.values() for v in vs], alpha=0.05)
    rates = {k: float(np.mean([decide(v, null).flagged for v in vs])) for k, vs in items.items()}
    assert rates[2] == 0.0  # two orderings: no spread to stand out from, never flagged
    assert all(0.03 < rates[k] < 0.07 for k in (6, 24)), rates
    assert null.thresholds(2) == (float("inf"), float("inf")) and null.thresholds(6) != null.thresholds(24)
    js = null.to_json()
    assert js["thresholds_by_k"]["2"] == {"a": None, "b": None} and json.dumps(js, allow_nan=False)


def test_nothing_scored_and_too_few_to_decide_are_verdicts_of_their_own() -> None:
    null = exchangeable_null(24)
    assert summarize([], null).verdict == "nothing_scored"
    assert summarize([], null, n_degenerate=5).verdict == "too_few_scored"
    two = [verdict(i, [-1.0] + [-10.0] * 23) for i in range(2)]  # published on top in both, yet p >= 1/576
    s = summarize(two, null)
    assert s.verdict == "too_few_scored" and "too few items" in s.sentence
    assert best_case_p(two, null) == 1 / 24**2
    three = [verdict(i, [-1.0] + [-10.0] * 23) for i in range(3)]
    assert summarize(three, null).verdict == "leakage"
    noise = clean_items(60, 2, seed=3)  # 60 two-option items: enough units to decide
    assert summarize(noise, exchangeable_null(2)).verdict == "no_evidence"


def test_degenerate_scores_are_recognised() -> None:
    from providers.base import LogprobRecord

    def rec(*lps: float) -> LogprobRecord:
        return LogprobRecord(tokens=("<s>",) + ("x",) * len(lps), logprobs=(None, *lps), offsets=(0,) * (len(lps) + 1))

    assert "all 3 orderings scored the same" in str(degenerate_reason([-4.0, -4.0, -4.0], [rec(-1.0, -3.0)]))
    assert "same logprob (-1)" in str(degenerate_reason([-4.0, -5.0], [rec(-1.0, -1.0), rec(-1.0)]))
    assert degenerate_reason([-4.0, -5.0], [rec(-1.0, -3.0), rec(-2.0)]) is None

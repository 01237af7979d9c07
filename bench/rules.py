"""Every item rule bench/detection.py compares, and its metrics with confidence intervals.

A rule maps each item to (scenario, named ordering): scenario "a" names the published order, "b" another
one (the ordering the rule says was trained), None when the item is not flagged.
- scenario a: recall = flagged (either scenario) among published-order leaks; FPR = flagged among clean.
- scenario b: recall = flagged under scenario b WITH the trained order named, among shuffled leaks; FPR =
  clean items flagged under scenario b.
Intervals: Wilson 95% for recall and FPR, a seeded bootstrap over items (2,000 resamples) for F1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from auditor.analysis.detector import ItemStats, stats_from_report
from auditor.analysis.itemtests import item_test, reference_scores
from auditor.analysis.paper import isolation_scores, paper_b
from auditor.analysis.stats import wilson_interval
from auditor.analysis.verdicts import control_null, decide, decide_all, exchangeable_null
from bench.legacy_rules import decide_v1, thresholds
from bench.nulls import published_first

PAPER_B = os.environ.get("AUDITOR_BENCH_PAPER_B", "1") == "1"  # IsolationForest: ~0.1 s per item
Flag = tuple[str | None, tuple[int, ...] | None]
BOOT = 2_000


def verdicts_of(report: dict[str, Any]) -> list[ItemStats]:
    return [stats_from_report(d) for d in report["items"]]


def _flag(v: ItemStats, scenario: str | None, index: int | None = None) -> Flag:
    if scenario is None:
        return None, None
    i = 0 if scenario == "a" else (v.best_index if index is None or index < 0 else index)
    return scenario, tuple(v.orderings[i])


def decisions(
    audited: Sequence[ItemStats], reference: Sequence[ItemStats] | None, paper_b_rule: bool = PAPER_B
) -> dict[str, dict[str, Flag]]:
    """Every rule's per-item decision; rules that need a reference only when one is given."""
    out: dict[str, dict[str, Flag]] = {
        "paper-a (published order on top)": {v.id: _flag(v, "a" if v.rank == 1 else None) for v in audited},
    }
    if paper_b_rule:
        out["paper-b (IsolationForest, delta=-0.20)"] = {
            v.id: _flag(v, "b" if paper_b(isolation_scores(v.scores), -0.20) else None) for v in audited
        }
    t1 = thresholds(None)
    out["v1 default, exchangeable (before #17)"] = {v.id: _flag(v, decide_v1(v, t1)) for v in audited}
    ex = exchangeable_null()
    out["auditor, exchangeable (default)"] = _tested(audited, decide_all(audited, ex))
    out["rank only, exchangeable (before familiarity)"] = _auditor(audited, lambda v: item_test(v, None, ex.alpha))
    if reference is not None:
        tc = thresholds(reference)
        out["v1, base as control (before #17)"] = {v.id: _flag(v, decide_v1(v, tc)) for v in audited}
        null = control_null([(reference, "base")])
        out["auditor, paired with base (default)"] = _tested(audited, decide_all(audited, null))
        out["rank only, paired with base (before familiarity)"] = _auditor(audited, lambda v: decide(v, null))
        out["paired, standardised deviation (first version)"] = _auditor(
            audited, lambda v: item_test(v, null.reference_for(v), null.alpha)
        )
        out["alt: deviation in dataset-scaled scores (not chosen)"] = _pooled(audited, reference)
        out["alt: deviation on top only (not chosen)"] = {
            v.id: _flag(v, "a" if _p_paired(v, null) <= 1 / 24 + 1e-12 else None) for v in audited
        }
        out["alt: deviation in nats on top only (not chosen)"] = {
            v.id: _flag(v, "a" if _p_paired(v, null, nats=True) <= 1 / 24 + 1e-12 else None) for v in audited
        }
        for w in WEIGHTS:
            out[f"alt: weighted deviation, w = {w} (not chosen)"] = _weighted(audited, reference, w)
    return out


# audited - w * base: the weights chosen on the seed-0 canary's e2e items (bench/instrument.py), not adopted
WEIGHTS = (0.5, 0.6)


def _weighted(audited: Sequence[ItemStats], reference: Sequence[ItemStats], w: float) -> dict[str, Flag]:
    """The published order first in the audited scores minus w times the reference's (in nats, ordering by
    ordering); items the reference did not score in every ordering are not flagged."""
    refs = {r.id: r for r in reference}
    out: dict[str, Flag] = {}
    for v in audited:
        ref = reference_scores(v, (refs,), raw=True)
        top = ref is not None and bool(published_first(np.asarray([v.scores], dtype=float) - w * ref)[0])
        out[v.id] = _flag(v, "a" if top else None)
    return out


def _pooled(audited: Sequence[ItemStats], reference: Sequence[ItemStats]) -> dict[str, Flag]:
    """Alternative paired rule: each model's item-centred scores divided by that model's median within-item
    SD over the dataset (not per item), published order on top of both the audited scores and the
    deviation. Robust in simulation to a reference that expresses natural order on another scale, but
    on the seed-0 canary 0.40 at 0.02 where the default (deviation in nats) found 0.67: not chosen."""
    from auditor.analysis.itemtests import random_rank

    def scale(vs: Sequence[ItemStats]) -> float:
        return float(np.median([np.std(v.scores) for v in vs if len(v.scores) > 1])) or 1.0

    refs = {r.id: r for r in reference}
    sa, sr = scale(audited), scale(reference)
    out: dict[str, Flag] = {}
    for v in audited:
        r = refs.get(v.id)
        pos = {tuple(p): i for i, p in enumerate(r.orderings)} if r is not None else {}
        idx = [pos.get(tuple(p)) for p in v.orderings]
        if r is None or any(i is None for i in idx):
            out[v.id] = _flag(v, None)
            continue
        a = np.asarray(v.scores, dtype=float)
        b = np.asarray([r.scores[i] for i in idx if i is not None], dtype=float)
        d = (a - a.mean()) / sa - (b - b.mean()) / sr
        top = v.rank_random == 1 and random_rank(d, 0, f"0\x00paired\x00{v.id}") == 1
        out[v.id] = _flag(v, "a" if top else None)
    return out


def _p_paired(v: ItemStats, null: Any, nats: bool = False) -> float:
    """The paired p-value alone: the rank of the deviation from the reference (standardised scores; `nats`: the
    default's deviation in nats), without the default's second condition (published order on top of the audited
    scores)."""
    test = item_test(v, null.reference_for(v), null.alpha, raw_ref=null.reference_for(v, raw=True) if nats else None)
    return 1.0 if test.p_paired is None else test.p_paired


def _tested(audited: Sequence[ItemStats], tests: dict[str, Any]) -> dict[str, Flag]:
    return {v.id: _flag(v, tests[v.id].scenario, tests[v.id].b_ordering) for v in audited}


def _auditor(audited: Sequence[ItemStats], test: Callable[[ItemStats], Any]) -> dict[str, Flag]:
    out: dict[str, Flag] = {}
    for v in audited:
        t = test(v)
        out[v.id] = _flag(v, t.scenario, t.b_ordering)
    return out


def _f1(tp: np.ndarray[Any, Any], fp: np.ndarray[Any, Any]) -> float:
    """F1 from 0/1 arrays: tp over the positives, fp over the clean items."""
    hits, false = float(tp.sum()), float(fp.sum())
    precision = hits / (hits + false) if hits + false else 0.0
    recall = hits / len(tp) if len(tp) else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def metrics(positives: np.ndarray[Any, Any], clean: np.ndarray[Any, Any], seed: int = 0) -> dict[str, Any]:
    """Recall, FPR, precision and F1 (with intervals) from 0/1 flags on positives and on clean items."""
    rng = np.random.default_rng(seed)
    boots = [
        _f1(positives[rng.integers(0, len(positives), len(positives))], clean[rng.integers(0, len(clean), len(clean))])
        for _ in range(BOOT)
    ] if len(positives) and len(clean) else [0.0]  # fmt: skip
    tp, fp = int(positives.sum()), int(clean.sum())
    return {
        "recall": tp / max(1, len(positives)),
        "recall_ci": list(wilson_interval(tp, len(positives))),
        "fpr": fp / max(1, len(clean)),
        "fpr_ci": list(wilson_interval(fp, len(clean))),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "f1": _f1(positives, clean),
        "f1_ci": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
        "n_positive": len(positives),
        "n_clean": len(clean),
    }


def score_rule(flags: dict[str, Flag], truth: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def status(s: str) -> list[str]:
        return [i for i in flags if truth[i]["status"] == s]

    pub, shuf, clean = status("leaked-published-order"), status("leaked-shuffled"), status("clean")
    any_flag = {i: flags[i][0] is not None for i in flags}
    named = {i: flags[i][0] == "b" and list(flags[i][1] or ()) == list(truth[i]["order"]) for i in flags}
    return {
        "a": metrics(np.array([any_flag[i] for i in pub]), np.array([any_flag[i] for i in clean])),
        "b": metrics(np.array([named[i] for i in shuf]), np.array([flags[i][0] == "b" for i in clean])),
    }


def load_report(path: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads((path / "report.json").read_text())
    return data

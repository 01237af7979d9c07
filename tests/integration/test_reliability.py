"""Faults, kills, interrupts and shared caches, against our own fault-injecting HTTP server on 127.0.0.1.

These run the real CLI in subprocesses (as a user would) and count, on the server side, how often
each prompt was scored.
"""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA_SLICES
from tests.support.faultserver import FaultServer, FaultServerProcess

pytestmark = pytest.mark.reliability

N_ITEMS = 12  # x 24 orderings = 288 prompts


def make_dataset(root: Path, n: int) -> Path:
    """`n` MMLU rows whose option lists are all distinct (items sharing a list are scored once since
    2acd328, which would change every count these tests check): each option gets its row number."""
    src = DATA_SLICES / "mmlu" / "test" / "abstract_algebra_test.csv"
    d = root / f"data{n}"
    d.mkdir()
    rows = list(csv.reader(io.StringIO(src.read_text(encoding="utf-8"))))[:n]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for i, row in enumerate(rows):
        writer.writerow([row[0], *(f"{o} (r{i})" for o in row[1:-1]), row[-1]])
    (d / "abstract_algebra_test.csv").write_text(out.getvalue(), encoding="utf-8")
    return d


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path, N_ITEMS)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "auditor.cli", *args]


def run_args(base_url: str, dataset: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return cli("run", "--base-url", base_url, "--dataset", str(dataset), "--out", str(out), "--cache", str(cache),
               "--batch-size", "4", "--concurrency", "4", "--provider", "openai-completions", *extra)  # fmt: skip


def verdict(out: Path) -> dict[str, Any]:
    """The report minus when the scores were obtained (which differs between caches by design)."""
    data: dict[str, Any] = json.loads((out / "report.json").read_text())
    data["provenance"].pop("time")
    return data


def integrity(cache: Path) -> str:
    conn = sqlite3.connect(cache)
    try:
        return str(conn.execute("pragma integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_audit_survives_every_fault_kind(dataset: Path, tmp_path: Path) -> None:
    kinds = "429|500|502|503|reset|truncate|invalid|short|null|drop"
    with FaultServer("") as clean:
        ref = subprocess.run(run_args(clean.base_url, dataset, tmp_path / "ref", tmp_path / "ref.sqlite"),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert ref.returncode == 0, ref.stderr
    spec = f"429,every=7,retry_after=0; mix,p=0.35,kinds={kinds}; slow,at=5,seconds=3"
    with FaultServer(spec, seed=3) as srv:
        out, cache = tmp_path / "faulty", tmp_path / "f.sqlite"
        args = run_args(srv.base_url, dataset, out, cache, "--timeout", "2", "--attempts", "4")
        first = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        report = json.loads((out / "report.json").read_text())
        done = report["summary"]["n_items"] + report["summary"]["n_failed"]
        assert done == N_ITEMS  # every item is accounted for: scored or failed with a reason
        assert all(f["reason"] for f in report["failures"])
        for _ in range(6):  # re-attempt only the failures until none is left
            if not report["failures"]:
                break
            before = srv.stats().requests
            again = subprocess.run([*args, "--retry-failed"], capture_output=True, text=True, timeout=300)
            assert again.returncode == 0, again.stderr
            assert srv.stats().requests - before <= 3 * sum(1 for _ in report["failures"]) * 24
            report = json.loads((out / "report.json").read_text())
        stats = srv.stats()
    assert not report["failures"]
    assert verdict(out)["items"] == verdict(tmp_path / "ref")["items"]
    assert verdict(out)["summary"] == verdict(tmp_path / "ref")["summary"]
    assert sum(stats.faults.values()) >= 30 and len(stats.faults) >= 8, stats.faults
    assert max(stats.scored_by_prompt.values()) == 1  # nothing scored twice: retries only after a failure
    assert integrity(cache) == "ok"
    print(f"faults injected: {dict(stats.faults)}; requests {stats.requests}; prompts scored {stats.scored}")


def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    n_items = 30  # 720 prompts in 180 requests of 4, 4 at a time, 0.3 s each: ~14 s of work to interrupt
    dataset = make_dataset(tmp_path, n_items)
    rng = random.Random(11)
    state = tmp_path / "server.jsonl"
    with FaultServerProcess(state, faults="slow,seconds=0.3") as srv:
        out, cache = tmp_path / "killed", tmp_path / "k.sqlite"
        args = run_args(srv.base_url, dataset, out, cache)
        kills = 0
        for _ in range(25):
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.5, 1.3))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            if kills >= 20:
                break
        assert kills >= 20
        final = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        stats = srv.stats()
        ref = subprocess.run(run_args(srv.base_url, dataset, tmp_path / "ref", tmp_path / "ref.sqlite"),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert ref.returncode == 0
    assert verdict(out) == verdict(tmp_path / "ref")
    n_prompts = n_items * 24 + 1  # + the probe prompt
    extra = sum(c - 1 for c in stats.scored_by_prompt.values() if c > 1)
    in_flight_bound = kills * 4 * 4  # concurrency x batch size at each kill
    assert len(stats.scored_by_prompt) == n_prompts
    assert extra <= in_flight_bound
    assert integrity(cache) == "ok"
    print(f"kills: {kills}; prompts scored twice or more: {extra} (in-flight bound {in_flight_bound}); "
          f"server requests: {stats.requests}")  # fmt: skip


def test_ctrl_c_writes_partial_report_and_resume_hint(dataset: Path, tmp_path: Path) -> None:
    with FaultServer("slow,seconds=0.25") as srv:
        out, cache = tmp_path / "int", tmp_path / "i.sqlite"
        args = run_args(srv.base_url, dataset, out, cache, "--concurrency", "1")
        # as from a terminal: a job a shell started in the background (CI's `.ci/run &`) inherits SIGINT ignored,
        # and Python keeps it so; a handler here (not SIG_IGN) becomes the default disposition in the child
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        deadline = time.monotonic() + 60  # once 2 items are scored (the probe + 2 x 6 requests), not after a fixed
        # sleep: startup is slow on busy CPUs; 0.25 s per request leaves ~15 s to interrupt before the run ends
        while srv.app.stats.requests < 14 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "re-run the same command" in stderr and "Traceback" not in stderr
        partial = json.loads((out / "report.json").read_text())
        assert partial["summary"]["partial"] is True
        assert 0 < partial["summary"]["n_items"] < N_ITEMS
        assert "Partial report" in (out / "report.md").read_text()
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0
        full = json.loads((out / "report.json").read_text())
    assert full["summary"]["partial"] is False and full["summary"]["n_items"] == N_ITEMS
    assert integrity(cache) == "ok"


def test_two_processes_share_one_cache(dataset: Path, tmp_path: Path) -> None:
    with FaultServer("slow,seconds=0.02") as srv:
        cache = tmp_path / "shared.sqlite"
        procs = [
            subprocess.Popen(run_args(srv.base_url, dataset, tmp_path / f"o{i}", cache),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)
        ]  # fmt: skip
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    assert verdict(tmp_path / "o0")["items"] == verdict(tmp_path / "o1")["items"]
    assert integrity(cache) == "ok"
    conn = sqlite3.connect(cache)
    assert conn.execute("select count(*) from scores").fetchone()[0] == N_ITEMS * 24  # the probe is not a score
    conn.close()


def test_unreachable_endpoint_and_bad_flags_are_one_line(tmp_path: Path, dataset: Path) -> None:
    for args, code in [
        (cli("probe", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "1", "--attempts", "1"), 2),
        (cli("probe", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "1"), 4),
        (run_args("http://127.0.0.1:9/v1", dataset, tmp_path / "x", tmp_path / "c.sqlite", "--batch-size", "0"), 2),
        (cli("run", "--base-url", "http://127.0.0.1:9/v1", "--dataset", str(dataset)), 2),
    ]:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == code, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "x").exists()

"""Replicas of one model (`--base-url` repeated): the work spread by speed, one replica dying mid-run losing
nothing and scoring nothing twice, one cache whatever the set, replicas that are not one model refused.
Real HTTP servers on loopback (tests/support/faultserver.py), the CLI in process."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from auditor.cli import main
from auditor.endpoint.replicas import ReplicaSet
from auditor.errors import Unreachable
from auditor.run.codes import ExitCode
from providers.base import EndpointInfo, LogprobRecord, Provider
from tests.conftest import DATA_SLICES
from tests.support.faultserver import FaultServer

ITEMS = 8  # x 24 orderings = 192 prompts, 48 requests of 4


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    d = tmp_path / "mmlu"
    d.mkdir()
    lines = (DATA_SLICES / "mmlu" / "test" / "anatomy_test.csv").read_text(encoding="utf-8").splitlines(True)
    (d / "anatomy_test.csv").write_text("".join(lines[:ITEMS]), encoding="utf-8")
    return d


def audit(urls: list[str], dataset: Path, out: Path, cache: Path, *extra: str) -> int:
    flags = [f for u in urls for f in ("--base-url", u)]
    return main(["run", *flags, "--dataset", str(dataset), "--out", str(out), "--cache", str(cache), "--quiet",
                 "--provider", "openai-completions", "--batch-size", "4", "--concurrency", "2", *extra])  # fmt: skip


def report(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "report.json").read_text())
    return data


def cached_rows(cache: Path) -> int:
    with sqlite3.connect(cache) as db:
        return int(db.execute("SELECT count(*) FROM scores").fetchone()[0])


def test_two_replicas_share_the_work_by_speed_and_one_cache(dataset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    with FaultServer("slow,seconds=0.15") as slow, FaultServer() as fast:
        assert audit([slow.base_url, fast.base_url], dataset, tmp_path / "r", cache) == ExitCode.OK
        s, f = slow.stats(), fast.stats()
        data = report(tmp_path / "r")
        shares = {r["base_url"]: r for r in data["provenance"]["endpoint"]["replicas"]}
        assert shares[slow.base_url]["prompts"] > 0 and shares[fast.base_url]["prompts"] > 0  # both used
        assert shares[fast.base_url]["prompts"] > 2 * shares[slow.base_url]["prompts"]  # the faster took more
        assert data["summary"]["n_items"] == ITEMS
        # every prompt scored once across the two, except the probe's and the cross-check's two (on each on purpose)
        twice = [k for k in set(s.scored_by_prompt) | set(f.scored_by_prompt)
                 if s.scored_by_prompt[k] + f.scored_by_prompt[k] > 1]  # fmt: skip
        assert len(twice) == 3
        assert cached_rows(cache) == ITEMS * 24  # each prompt once (the probe is not a score)
        # one cache for the model, not per URL: the fast replica alone (a "different set") sends nothing
        before = fast.stats().scored
        assert audit([fast.base_url, slow.base_url], dataset, tmp_path / "again", cache) == ExitCode.OK
        assert fast.stats().scored + slow.stats().scored - before - s.scored == 2 * 2  # the cross-check only
        assert report(tmp_path / "again")["items"] == data["items"]


def test_a_replica_that_dies_mid_run_loses_nothing(dataset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    with FaultServer("die,at=6") as dying, FaultServer("slow,seconds=0.02") as steady:
        code = audit([dying.base_url, steady.base_url], dataset, tmp_path / "r", cache)
        assert code == ExitCode.OK and dying.died
        data = report(tmp_path / "r")
        assert data["summary"]["n_items"] == ITEMS and not data["failures"]
        shares = {r["base_url"]: r for r in data["provenance"]["endpoint"]["replicas"]}
        assert shares[dying.base_url]["down"] and shares[dying.base_url]["prompts"] > 0
        d, s = dying.stats(), steady.stats()
        keys = set(d.scored_by_prompt) | set(s.scored_by_prompt)
        scored = {k: d.scored_by_prompt[k] + s.scored_by_prompt[k] for k in keys}
        assert sum(n > 1 for n in scored.values()) == 3  # the probe's and the cross-check's, nothing else twice
        assert cached_rows(cache) == ITEMS * 24


def test_replicas_that_are_not_one_model_are_refused_before_scoring(dataset: Path, tmp_path: Path) -> None:
    with FaultServer(model="model-a") as a, FaultServer(model="model-b") as b:
        code = audit([a.base_url, b.base_url], dataset, tmp_path / "r", tmp_path / "c.sqlite")
        assert code == ExitCode.ENDPOINT
        assert a.stats().scored + b.stats().scored <= 2  # the probes' prompt, nothing of the audit
    assert not (tmp_path / "r" / "report.json").exists()


def test_replicas_that_score_differently_are_refused(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from auditor.input.items import load_items
    from auditor.prompts.orderings import PAPER

    first = load_items(dataset).items[0]
    planted = [PAPER.render(first, tuple(range(4))).text]  # the cross-check's first prompt, boosted on one
    with FaultServer() as a, FaultServer(preferred=planted) as b:
        code = audit([a.base_url, b.base_url], dataset, tmp_path / "r", tmp_path / "c.sqlite")
    assert code == ExitCode.ENDPOINT
    assert "disagree" in capsys.readouterr().err


def test_the_same_url_twice_and_an_empty_replicas_file_are_usage_errors(dataset: Path, tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/v1"
    assert audit([url, url + "/"], dataset, tmp_path / "r", tmp_path / "c.sqlite") == ExitCode.USAGE
    empty = tmp_path / "urls.txt"
    empty.write_text("# none yet\n")
    code = audit([url], dataset, tmp_path / "r", tmp_path / "c.sqlite", "--replicas-file", str(empty))
    assert code == ExitCode.USAGE


class _Scripted(Provider):
    """A replica whose answers a test scripts: fails while `down`, else one record per prompt."""

    name = "scripted"

    def __init__(self, url: str) -> None:
        super().__init__(None, base_url=url, model="m")  # type: ignore[arg-type]
        self.down = False
        self.calls = 0

    def scoring_params(self) -> dict[str, Any]:
        return {}

    def request_body(self, prompts: Any) -> dict[str, Any]:
        return {}

    async def describe(self) -> EndpointInfo:
        return EndpointInfo(self.base_url, "m")

    async def score(self, prompts: Any) -> list[LogprobRecord]:
        self.calls += 1
        await asyncio.sleep(0)
        if self.down:
            raise Unreachable("connection refused", endpoint=self.base_url)
        return [LogprobRecord(("a",), (None,), (0,)) for _ in prompts]


def test_a_down_replica_gets_a_trial_after_revive_after_and_comes_back() -> None:
    async def scenario() -> None:
        a, b = _Scripted("http://a/v1"), _Scripted("http://b/v1")
        told: list[str] = []
        rs = ReplicaSet.of([a, b], 1, revive_after=0.2, on_down=told.append)
        a.down = True
        with pytest.raises(Unreachable):
            while True:  # the roomiest replica first: a, until it fails
                await rs.score(["x"])
        assert rs.replicas[0].down_since is not None and len(told) == 1 and "http://a/v1" in told[0]
        calls = a.calls
        for _ in range(5):
            await rs.score(["x"])
        assert a.calls == calls  # down: nothing sent to it before revive_after
        a.down = False
        await asyncio.sleep(0.25)
        await rs.score(["x"])
        assert a.calls == calls + 1 and rs.replicas[0].down_since is None  # the trial came back: in service

    asyncio.run(scenario())

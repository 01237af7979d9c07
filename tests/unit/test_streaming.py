"""An audit streams: each item is judged the moment its prompts are scored and its records are dropped,
so memory follows the items in flight, not the audit's size (bench/throughput.py measures peak RSS)."""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path

from auditor.api import audit_settings, endpoint
from auditor.run.audit import run_audit
from auditor.run.plan import WINDOW, plan_audit
from providers.base import LogprobRecord
from tests.support.planted import planted_server, route, rows, write_jsonl


def _alive() -> int:
    return sum(type(o) is LogprobRecord for o in gc.get_objects())


async def test_an_audit_holds_a_few_items_records_at_a_time(tmp_path: Path) -> None:
    ds = write_jsonl(tmp_path / "ds.jsonl", rows(120))
    server, _ = planted_server(ds)
    cfg = audit_settings(endpoint("http://fake.test/v1", model="fake-model"), ds, out=tmp_path / "out",
                         cache=tmp_path / "c.sqlite", concurrency=2)  # fmt: skip
    alive: list[int] = []
    seen = [0]
    before = _alive()  # records other tests left alive

    def progress(n: int, fate: str) -> None:
        seen[0] += n
        if seen[0] % 240 < n:  # every ~10 items
            alive.append(_alive() - before)

    with route(server):
        outcome = await run_audit(cfg, on_progress=progress)
    assert outcome.report.summary.n_items == 120 and seen[0] == 120 * 24
    assert len(alive) >= 10 and max(alive) <= 4 * 24  # the items in flight (2) and the one being judged
    # the same audit from the cache: nothing is held either, and the report is the same
    cached: list[int] = []
    with route(server):
        again = await run_audit(replace(cfg, force=True), on_progress=lambda n, f: cached.append(_alive() - before))
    assert max(cached) <= 4 * 24 and again.report.summary == outcome.report.summary


def test_a_plan_renders_prompts_when_asked_and_keeps_a_window(tmp_path: Path) -> None:
    n = WINDOW + 100
    ds = write_jsonl(tmp_path / "ds.jsonl", rows(n))
    plan = plan_audit(audit_settings(endpoint("http://fake.test/v1"), ds, out=None, cache=tmp_path / "c.sqlite"))
    assert plan.n_prompts == n * 24 == sum(len(rows) for rows in plan.rendered)
    first = plan.rendered[0]
    assert plan.rendered[0] is first  # kept while recent
    assert all(f"Question number {i}:" in rows[0].text for i, rows in enumerate(plan.rendered[1:], 1))
    assert plan.rendered[0] is not first  # gone from the window: made again
    assert [r.text for r in plan.rendered[0]] == [r.text for r in first]  # made again, the same
    assert plan.rendered[-1] is plan.rendered[n - 1] and len(plan.rendered[2:5]) == 3

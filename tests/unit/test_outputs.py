"""Where a run writes, checked before it pays (auditor/run/outputs.py), and one run per cache and endpoint
at a time (auditor/scoring/turns.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from auditor.errors import UsageError
from auditor.run.outputs import check_model, check_out
from auditor.scoring.turns import EndpointTurn

URL = "http://127.0.0.1:8000/v1"


def report(out: Path, base_url: str = URL, model: str = "m", dataset: str = "data") -> None:
    out.mkdir(parents=True, exist_ok=True)
    prov = {"endpoint": {"base_url": base_url, "model": model}, "dataset": {"path": dataset}}
    (out / "report.json").write_text(json.dumps({"summary": {}, "provenance": prov}))


def test_unusable_out_is_refused_and_a_new_one_is_not_created(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    for out, why in [(tmp_path / "f", "is a file"), (tmp_path / "f" / "sub", "is a file")]:
        with pytest.raises(UsageError, match=why):
            check_out(out, base_url=URL, dataset="data", force=False)
    fresh = tmp_path / "a" / "b"
    assert check_out(fresh, base_url=URL, dataset="data", force=False) is None
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == [tmp_path / "f"]  # the probe left nothing


def test_another_audits_report_needs_force_the_same_audit_does_not(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report(out)
    assert check_out(out, base_url=URL, dataset="data", force=False) is not None  # the same audit, re-run
    for other in ({"base_url": "http://other/v1", "dataset": "data"}, {"base_url": URL, "dataset": "other"}):
        with pytest.raises(UsageError, match="another audit"):
            check_out(out, force=False, **other)
        assert check_out(out, force=True, **other) is not None
    existing = check_out(out, base_url=URL, dataset="data", force=False)
    check_model(out, existing, "m", force=False)
    with pytest.raises(UsageError, match="this run audits 'm2'"):
        check_model(out, existing, "m2", force=False)
    (out / "report.json").write_text("not json")
    with pytest.raises(UsageError, match="not an auditor report"):
        check_out(out, base_url=URL, dataset="data", force=False)
    assert check_out(out, base_url=URL, dataset="data", force=True) is None


async def test_runs_on_one_cache_and_endpoint_take_turns(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    first, second, other = EndpointTurn(cache, URL), EndpointTurn(cache, URL), EndpointTurn(cache, "http://x/v1")
    await first.wait()
    await asyncio.wait_for(other.wait(), 1.0)  # another endpoint: no waiting
    told: list[str] = []
    waiting = asyncio.ensure_future(second.wait(told.append, poll=0.01))
    await asyncio.sleep(0.1)
    assert not waiting.done() and told and told[0].startswith("pid ")
    first.release()
    await asyncio.wait_for(waiting, 1.0)
    second.release()
    other.release()

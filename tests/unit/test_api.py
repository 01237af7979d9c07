"""The Python API: the README's example runs against the fake server; options are the CLI's flags."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path

import pytest

import auditor
from auditor import audit, compare
from auditor.api import LIMITS, AuditOptions
from auditor.cli.main import build_parser
from auditor.errors import UsageError
from auditor.run.config import AuditConfig
from tests.support.fakeserver import FakeServer
from tests.support.planted import planted_server, route, rows, write_jsonl

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet() -> str:
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def test_readme_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer(model="M")
    with route(server, host="127.0.0.1"):
        exec(compile(_snippet(), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    report = json.loads((tmp_path / "runs" / "m1" / "report.json").read_text())
    s, letter = report["summary"], report["accuracy"]["methods"]["letter"]
    assert printed[0] == f"{s['verdict']} {s['n_flagged']} of {s['n_items']} items flagged"
    overall, clean = letter["overall"]["accuracy"], letter["unflagged"]["accuracy"]
    assert printed[1] == f"accuracy {overall:.1%}, decontaminated {clean:.1%}"
    board = json.loads((tmp_path / "board" / "compare.json").read_text())
    assert printed[2] == f"M {board['rows'][0]['grid_verdict']}"
    # the orderings and harness prompts (the sample holds one item twice: its copy's prompts come from the cache)
    assert 40 * 24 < server.prompts_scored <= 40 * (24 + 8) + 1 and report["accuracy"]["n_items"] == s["n_items"]
    assert (tmp_path / "cache" / "results.sqlite").is_file()


def test_options_are_the_cli_flags() -> None:
    """Every option of `audit` is a flag of `auditor run` (same name, dashes as underscores), and every
    field of AuditConfig is reachable from the API."""
    dests = set(vars(build_parser().parse_args(["run", "--base-url", "u", "--dataset", "d", "--out", "o"])))
    assert set(AuditOptions.__annotations__) <= dests
    fields = {f.name for f in dataclasses.fields(AuditConfig)}
    explicit = {"endpoint", "dataset", "out", "cache_path", "limits"}
    assert fields - explicit == (set(AuditOptions.__annotations__) - {"items", *LIMITS}) | {"sample"}
    assert inspect.iscoroutinefunction(audit) and auditor.compare is compare


async def test_audit_is_async_and_validates_like_the_cli(tmp_path: Path) -> None:
    ds = write_jsonl(tmp_path / "ds.jsonl", rows(6))
    server, _ = planted_server(ds)
    with pytest.raises(UsageError, match="--max-orderings must be at least 2"):
        await audit("http://fake.test/v1", ds, max_orderings=1)
    with route(server):
        report = await audit("http://fake.test/v1", ds, model="fake-model", cache=tmp_path / "c.sqlite", items=3,
                             max_tokens=10**6)  # fmt: skip
    assert report.summary.n_items == 3 and report.budget is not None and report.budget["limits"]["max_tokens"] == 10**6
    assert not (tmp_path / "report.json").exists()  # no `out`: nothing written but the results database
    board = compare(results_db=tmp_path / "results.sqlite")
    assert [r["run"] for r in board["rows"]] == [f"{tmp_path / 'results.sqlite'}#{board['rows'][0]['run'][-16:]}"]
    with pytest.raises(UsageError, match="no runs to compare"):
        compare()

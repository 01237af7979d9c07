"""Pay once per shared option list (issue 14 point 7): items sharing one option list (MMLU's
moral_scenarios) are judged once, so only their representative is scored; the report lists the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import respx

from auditor.cli import main
from tests.support.fakeserver import FakeServer

SHARED = ["Wrong, Wrong", "Wrong, Not wrong", "Not wrong, Wrong", "Not wrong, Not wrong"]


def dataset(path: Path) -> Path:
    rows = [{"id": f"m{i}", "subject": "moral", "question": f"Scenario pair {i}: which is wrong?", "choices": SHARED}
            for i in range(10)]  # fmt: skip
    rows += [{"id": f"u{i}", "subject": "other", "question": f"Question {i}?",
              "choices": [f"alpha {i}", f"beta {i}", f"gamma {i}", f"delta {i}"]} for i in range(5)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_shared_list_is_scored_once_and_every_item_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = dataset(tmp_path / "ds.jsonl")
    server = FakeServer()
    router = respx.mock(assert_all_called=False)
    router.route(host="fake.test").mock(side_effect=server.handler)
    base = ["--base-url", "http://fake.test/v1", "--model", "fake-model", "--dataset", str(ds),
            "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
    with router:
        assert main(["estimate", *base, "--json"]) == 0
        est = json.loads(capsys.readouterr().out)
        main(["run", *base, "--out", str(tmp_path / "run")])
    assert est["prompts"] == 6 * 24 and est["full_protocol_prompts"] == 15 * 24  # priced before: 144, not 360
    assert server.prompts_scored - 1 == 6 * 24  # the probe's prompt, then one list's 24 orderings once
    report = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    scored = [it for it in report["items"] if it["id"].startswith("m")]
    assert len(scored) == 1 and scored[0]["option_group_size"] == 10
    aside = report["set_aside"]["shared_option_list"]
    assert aside["count"] == 9 and sorted(aside["items"] + [scored[0]["id"]]) == sorted(f"m{i}" for i in range(10))
    assert report["summary"]["n_units"] == 6 and report["summary"]["n_items"] == 6
    md = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "set aside before scoring (shared option list): 9 item(s)" in md
    # the verdict block (terminal and report.md) says where the 9 audited items went
    items_row = "6 scored, " in md and ", 9 set aside (same options as another audited item: scored once)" in md
    assert items_row and ", 9 set aside (same options" in capsys.readouterr().out

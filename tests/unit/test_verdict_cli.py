"""One verdict, everywhere (issue 14): the terminal block, report.md and report.json say the same; the
report validates against docs/report-schema.json; exit codes gate CI; flagged items are all listed.

Synthetic items on the in-process fake server (no ../shared data).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import respx

from auditor.cli import main
from auditor.input.items import Item, load_items
from auditor.prompts.orderings import PAPER
from auditor.run.codes import ExitCode
from tests.support.fakeserver import FakeServer

BASE = "http://fake.test/v1"
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "report-schema.json").read_text(encoding="utf-8"))
WORDS = ["red", "blue", "green", "cat", "dog", "sun", "tree", "lake", "stone", "wind"]


def write_items(path: Path, n: int, *, sensitive: int = 0) -> Path:
    """`n` four-option items; the first `sensitive` end with "All of the above" (order-sensitive)."""
    rows = []
    for i in range(n):
        opts = [f"{WORDS[(i + k) % len(WORDS)]} {WORDS[(3 * i + k) % len(WORDS)]} number {i}-{k}" for k in range(4)]
        if i < sensitive:
            opts[3] = "All of the above"
        rows.append({"id": f"q{i}", "subject": ["s1", "s2"][i % 2], "question": f"Question {i}: which?",
                     "choices": opts, "answer": 0})  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def published(items: list[Item]) -> set[str]:
    return {PAPER.render(it, tuple(range(len(it.options)))).text for it in items}


def audit(
    tmp_path: Path, ds: Path, preferred: set[str], *extra: str, out: str = "run", familiar: frozenset[str] = frozenset()
) -> tuple[int, Path]:
    server = FakeServer(preferred=preferred, familiar=set(familiar))
    router = respx.mock(assert_all_called=False)
    router.route(host="fake.test").mock(side_effect=server.handler)
    args = ["run", "--base-url", BASE, "--model", "fake-model", "--dataset", str(ds), "--out", str(tmp_path / out),
            "--cache", str(tmp_path / "c.sqlite"), *extra]  # fmt: skip
    with router:
        code = main(args)
    return code, tmp_path / out


def block(text: str) -> list[str]:
    """The verdict block's lines: from 'verdict' up to (not including) the run's own rows."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("verdict "))
    end = next(i for i, ln in enumerate(lines) if i > start and ln.startswith(("prompts ", "```")))
    return lines[start:end]


def test_terminal_report_md_and_report_json_say_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = write_items(tmp_path / "ds.jsonl", 30, sensitive=4)
    items = load_items(ds).items
    shuffled = items[20]  # scenario b: the model prefers another ordering of this item
    preferred = published(items[:12]) | {PAPER.render(shuffled, (2, 0, 3, 1)).text}
    code, out = audit(tmp_path, ds, preferred, familiar=frozenset({shuffled.question}))  # its text was seen too
    terminal = capsys.readouterr().out
    assert code == ExitCode.OK
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    jsonschema.validate(report, SCHEMA)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert block(terminal) == block(md)  # the same block, word for word
    s = report["summary"]
    lines = dict(ln.split(None, 1) if not ln.startswith(("leaked ", "deciding ", "flagged ")) else
                 (" ".join(ln.split()[:2]), ln.split(None, 2)[2]) for ln in block(terminal))  # fmt: skip
    assert lines["verdict"].startswith(s["verdict"].replace("_", " ")) and s["verdict"] == "leakage"
    assert f"p = {s['p_verdict']:.2e}" in lines["deciding test"] and s["verdict_test"] == "permutation"
    lf = s["leaked_fraction"]
    assert lines["leaked fraction"] == f"{lf['estimate']:.1%} (95% CI {lf['low']:.1%} to {lf['high']:.1%})"
    flagged = [it for it in report["items"] if it["flagged"]]
    a = sum(it["scenario"] == "a" for it in flagged)
    b = sum(it["scenario"] == "b" for it in flagged)
    assert (s["n_flagged"], s["n_flagged_a"], s["n_flagged_b"]) == (len(flagged), a, b) and a >= 10 and b == 1
    assert lines["flagged items"].startswith(f"{len(flagged)} of 30 (a: {a}, b: {b};")
    assert lines["order-sensitive"].startswith("4 of 30 items (13%), kept") and s["n_order_sensitive"] == 4
    assert "no control" in lines["null"] and s["null"]["kind"] == "exchangeable"
    assert "spend" in terminal and str(out / "report.json") in terminal  # the run's own rows follow
    # report.md lists every flagged item with its scenario, the shuffled one included
    for it in flagged:
        row = next(ln for ln in md.splitlines() if ln.startswith(f"| `{it['id']}` |") and "scenario" not in ln
                   and ("a: " in ln or "b: " in ln))  # fmt: skip
        assert f"| {it['scenario']}: " in row
    assert any(it["id"] == shuffled.id and it["scenario"] == "b" for it in flagged)

    # --json on the same run (all cached): one JSON document, the same summary as report.json
    code, _ = audit(tmp_path, ds, preferred, "--json")
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["summary"] == s and doc["run"]["prompts_cached"] == 30 * 24
    assert doc["run"]["prompts_scored"] == 0 and doc["report"][:2] == [str(out / "report.json"), str(out / "report.md")]


def test_exclude_order_sensitive_leaves_them_out_of_the_headline(tmp_path: Path) -> None:
    ds = write_items(tmp_path / "ds.jsonl", 24, sensitive=6)
    items = load_items(ds).items
    preferred = published(items[:6])  # only the order-sensitive items win: natural order, not leakage
    _, kept_out = audit(tmp_path, ds, preferred, out="kept")
    _, excl_out = audit(tmp_path, ds, preferred, "--exclude-order-sensitive", out="excl")
    kept = json.loads((kept_out / "report.json").read_text())["summary"]
    excl = json.loads((excl_out / "report.json").read_text())
    jsonschema.validate(excl, SCHEMA)
    s = excl["summary"]
    assert kept["n_items"] == 24 and kept["n_top1"] >= 6 and kept["verdict"] == "leakage"
    assert s["n_items"] == 18 and s["n_excluded_order_sensitive"] == 6 and s["n_units"] == 18
    assert s["n_top1"] == sum(it["top1"] for it in excl["items"] if not it["excluded"]) < 6
    assert s["chance_rate"] == pytest.approx(1 / 24) and s["verdict"] == "no_evidence"
    assert s["n_flagged"] == sum(it["flagged"] for it in excl["items"]) and not any(
        it["flagged"] for it in excl["items"] if it["excluded"]
    )
    md = (excl_out / "report.md").read_text()
    assert "| items scored (order-sensitive ones excluded) | 18 |" in md
    assert "6 of 24 items (25%), excluded from the headline" in md


def test_fail_on_leak_exits_1_on_leakage_and_0_when_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = write_items(tmp_path / "ds.jsonl", 20)
    leaky = published(load_items(ds).items[:10])
    assert audit(tmp_path, ds, leaky, "--fail-on-leak", out="leaky")[0] == ExitCode.LEAKAGE == 1
    assert audit(tmp_path, ds, leaky, out="leaky")[0] == 0  # without the flag a finding is not a failure
    assert audit(tmp_path, ds, set(), "--fail-on-leak", "--cache", str(tmp_path / "c2.sqlite"), out="clean")[0] == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("report ")


def test_quiet_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = write_items(tmp_path / "ds.jsonl", 6)
    assert audit(tmp_path, ds, set(), "--quiet")[0] == 0
    captured = capsys.readouterr()
    assert captured.err == "" and len(captured.out.strip().splitlines()) == 1
    assert captured.out.startswith("auditor: no evidence (auditor method); ")
    assert " p = " in captured.out and "report: " in captured.out


def test_help_lists_exit_codes_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "probe", "estimate"):
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "examples:" in text and f"auditor {command} --base-url" in text
        assert all(f"  {int(c):<4} " in text for c in ExitCode), command
        assert "The only place" not in text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    assert all(f"| {int(c)} |" in section for c in ExitCode)

"""--accuracy: harness-style prompts, answers, intervals, and the report section on the fake endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from auditor.analysis.accuracy import ItemAnswer, Rate, accuracy_section, newcombe, rate
from auditor.cli import main
from auditor.input.items import Item
from auditor.prompts.harness import harness_prompts
from tests.support.planted import planted_server, route, rows, write_jsonl

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "report-schema.json").read_text(encoding="utf-8"))
ITEM = Item("x:0", "  What is 2+2? ", ("3", "4", "five"), 1, "high_school_math", "x.csv", 0)


def test_prompts_are_the_harness_mmlu_tasks_zero_shot() -> None:
    h = harness_prompts(ITEM)
    context = (
        "The following are multiple choice questions (with answers) about high school math.\n\n"
        "What is 2+2?\nA. 3\nB. 4\nC. five\nAnswer:"
    )
    assert [r.text for r in h.letter] == [context + " A", context + " B", context + " C"]
    assert all(r.text[r.span_start : r.span_end] == f" {c}" for r, c in zip(h.letter, "ABC", strict=True))
    assert [r.text for r in h.cloze] == [f"Question: What is 2+2?\nAnswer: {o}" for o in ITEM.options]
    assert [r.text[r.span_start : r.span_end] for r in h.cloze] == [" 3", " 4", " five"]
    assert h.all() == [*h.letter, *h.cloze]


def test_answer_is_the_first_maximum_and_norm_divides_by_characters() -> None:
    a = ItemAnswer("x", 1, letter=(-1.0, -1.0, -3.0), cloze=(-2.0, -2.5, -4.0), option_chars=(1, 1, 4))
    assert a.choice("letter") == 0 and a.correct("letter") is False  # a tie goes to the first, like np.argmax
    assert a.choice("cloze") == 0 and a.choice("cloze_norm") == 2  # -4/4 = -1 beats -2 and -2.5
    assert ItemAnswer("y", None, (-1.0, -2.0), None, (1, 1)).correct("letter") is None
    assert ItemAnswer("y", 0, (-1.0, -2.0), None, (1, 1)).choice("cloze") is None


def test_intervals_wilson_and_newcombe() -> None:
    r = rate(56, 70)
    assert (r.accuracy, round(r.low or 0, 4), round(r.high or 0, 4)) == (0.8, 0.6918, 0.8770)
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339
    d = newcombe(rate(56, 70), rate(48, 80))
    assert d.estimate == pytest.approx(0.2) and (round(d.low or 0, 4), round(d.high or 0, 4)) == (0.0524, 0.3339)
    assert rate(0, 0) == Rate(0, 0, None, None, None) and newcombe(rate(0, 0), r).estimate is None


def test_section_splits_flagged_unflagged_and_counts_no_answer_apart() -> None:
    answers = [
        ItemAnswer("a", 0, (-1.0, -2.0), (-1.0, -2.0), (1, 1)),  # right, flagged
        ItemAnswer("b", 0, (-3.0, -2.0), (-1.0, -2.0), (1, 1)),  # letter wrong, unflagged
        ItemAnswer("c", None, (-3.0, -2.0), (-1.0, -2.0), (1, 1)),  # no key
        ItemAnswer("d", 1, None, (-1.0, -2.0), (1, 1), error="HTTP 400"),  # letter not scored
        ItemAnswer("e", 1, (-1.0, -2.0), (-1.0, -2.0), (1, 1)),  # not judged (failed in the audit)
    ]
    flagged = {"a": True, "b": False, "c": False, "d": False}
    s = accuracy_section(answers, flagged, dict.fromkeys("abcde", 2), prompts=16, prompt_tokens=99)
    assert (s.n_items, s.n_with_answer, s.n_no_answer, s.chance) == (4, 3, 1, 0.5)
    letter = s.methods["letter"]
    assert (letter.overall.n, letter.overall.correct, letter.not_scored) == (2, 1, 1)
    assert (letter.flagged.correct, letter.flagged.n, letter.unflagged.correct, letter.unflagged.n) == (1, 1, 0, 1)
    assert letter.decontaminated_change.estimate == pytest.approx(-0.5)  # 0/1 - 1/2
    assert s.methods["cloze"].overall.n == 3
    assert [(a.id, a.letter, a.cloze) for a in s.items] == [("a", 0, 0), ("b", 1, 0), ("c", 1, 0), ("d", None, 0)]


def _args(ds: Path, tmp: Path) -> list[str]:
    return ["--base-url", "http://fake.test/v1", "--model", "fake-model", "--dataset", str(ds),
            "--cache", str(tmp / "c.sqlite")]  # fmt: skip


def test_run_reports_accuracy_on_flagged_and_unflagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = rows(24)
    data[5]["answer"] = None  # one item without an answer key
    ds = write_jsonl(tmp_path / "ds.jsonl", data)
    server, leaked = planted_server(ds, every=3)
    out = tmp_path / "run"
    with route(server):
        assert main(["estimate", *_args(ds, tmp_path), "--accuracy", "--json"]) == 0
        est = json.loads(capsys.readouterr().out)
        assert main(["run", *_args(ds, tmp_path), "--out", str(out), "--accuracy"]) == 0
    assert est["accuracy"]["prompts"] == est["accuracy"]["prompts_to_score"] == 24 * 8
    assert est["prompts"] == 24 * 24 + 24 * 8 and 0 < est["accuracy"]["tokens"] < est["tokens"]
    assert server.prompts_scored == 24 * 32 + 1  # the orderings, the harness prompts, the probe
    report = json.loads((out / "report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    acc = report["accuracy"]
    flagged = {it["id"] for it in report["items"] if it["flagged"]}
    assert {it.id for it in leaked} <= flagged
    assert (acc["n_items"], acc["n_with_answer"], acc["n_no_answer"]) == (24, 23, 1)
    assert acc["prompts"] == 24 * 8 and acc["prompt_tokens"] == est["accuracy"]["tokens"] - 24 * 8  # less generated
    for method in ("letter", "cloze", "cloze_norm"):
        m = acc["methods"][method]
        assert m["flagged"]["accuracy"] > 0.8 and m["flagged"]["n"] == len(flagged - {"q5"})
        assert m["unflagged"]["accuracy"] < 0.6 and m["flagged_minus_unflagged"]["low"] > 0
        assert m["overall"]["n"] == m["flagged"]["n"] + m["unflagged"]["n"] == 23
        assert m["decontaminated_change"]["high"] < 0
    answers = {a["id"]: a for a in acc["items"]}
    assert all(answers[it.id][m] == it.answer for it in leaked for m in ("letter", "cloze", "cloze_norm"))
    assert answers["q5"]["answer"] is None and answers["q5"]["letter"] is not None
    assert report["spend"]["prompts_used"] == 24 * 24  # the verdict's prompts only
    md = (out / "report.md").read_text()
    assert "## What leakage does to the score" in md and "| decontaminated (flagged items removed) |" in md
    html = (out / "report.html").read_text()
    assert '<h2 id="accuracy">' in html and "decontaminated (flagged items removed)" in html

    before = server.prompts_scored
    with route(server):
        assert main(["run", *_args(ds, tmp_path), "--out", str(tmp_path / "again"), "--accuracy"]) == 0
    assert server.prompts_scored == before  # all from the cache
    assert (tmp_path / "again" / "report.json").read_bytes() == (out / "report.json").read_bytes()


def test_without_the_flag_nothing_extra_is_scored(tmp_path: Path) -> None:
    ds = write_jsonl(tmp_path / "ds.jsonl", rows(6))
    server, _ = planted_server(ds)
    with route(server):
        assert main(["run", *_args(ds, tmp_path), "--out", str(tmp_path / "run")]) == 0
    assert server.prompts_scored == 6 * 24 + 1
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert "accuracy" not in report
    assert "What leakage does" not in (tmp_path / "run" / "report.md").read_text()


def test_a_failed_harness_prompt_leaves_the_verdict_alone(tmp_path: Path) -> None:
    ds = write_jsonl(tmp_path / "ds.jsonl", rows(4))
    server, _ = planted_server(ds)

    def refuse_cloze(body: dict[str, object]) -> object:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        if any(str(p).startswith("Question: Question number 2") for p in prompts):
            import httpx

            return httpx.Response(400, json={"error": {"message": "prompt too long"}})
        return None

    server.hook = refuse_cloze  # type: ignore[assignment]
    with route(server):
        assert main(["run", *_args(ds, tmp_path), "--out", str(tmp_path / "run"), "--accuracy"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["summary"]["n_items"] == 4 and report["summary"]["n_failed"] == 0
    acc = report["accuracy"]
    assert acc["methods"]["cloze"]["not_scored"] == 1 and acc["methods"]["letter"]["not_scored"] == 0
    q2 = next(a for a in acc["items"] if a["id"] == "q2")
    assert q2["cloze"] is None and "prompt too long" in q2["error"]

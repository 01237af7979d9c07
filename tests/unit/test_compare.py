"""`auditor compare`: a leaky and a clean run on fake endpoints, ranked; CSV, JSON and HTML agree;
runs audited differently are listed but not ranked; bad input exits 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from auditor.analysis.stats import holm
from auditor.cli import main
from auditor.report.compare import verdict_p
from tests.unit.test_report_html import audit, figures, parse, write_dataset


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    ds = write_dataset(tmp_path / "bench" / "colours.jsonl")
    clean = audit(tmp_path, ds, leak_every=0, model="clean-model", out="runs/clean")
    leaky = audit(tmp_path, ds, leak_every=2, model="leaky-model", out="runs/leaky")
    return leaky, clean


def board(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    return data


def test_leaky_run_ranks_first_and_the_formats_agree(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaky, clean = runs
    out = tmp_path / "board"
    assert main(["compare", str(clean), str(leaky), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| 1 | leaky-model | **leakage** |" in printed and "compare.html" in printed
    rows = board(out)["rows"]
    assert [r["model"] for r in rows] == ["leaky-model", "clean-model"]
    top, other = rows
    assert top["rank"] == 1 and top["ci_low"] > 0 and top["grid_verdict"] == "leakage" and top["verdict"] == "leakage"
    assert other["rank"] == 2 and other["grid_verdict"] == "no_evidence" and other["verdict"] == "no_evidence"
    assert top["p_holm"] == pytest.approx(min(1.0, 2 * min(top["p_value"], other["p_value"])))
    reports = {r["model"]: json.loads((Path(r["run"]) / "report.json").read_text()) for r in rows}
    for r in rows:  # the numbers are the runs' own
        s = reports[r["model"]]["summary"]
        assert r["leaked_fraction"] == s["leaked_fraction"]["estimate"] and r["p_value"] == s["p_verdict"]
        assert r["items"] == 16 and r["orderings"] == 16 * 24 and r["tokens"] > 0 and r["comparable"]

    with (out / "compare.csv").open(encoding="utf-8") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [c["model"] for c in csv_rows] == [r["model"] for r in rows]
    numbers = ("rank", "leaked_fraction", "ci_low", "ci_high", "p_value", "p_holm", "items", "orderings", "tokens")
    for c, r in zip(csv_rows, rows, strict=True):
        assert [float(c[k]) for k in numbers] == [float(r[k]) for k in numbers]
        assert (c["grid_verdict"], c["verdict"], c["benchmark"]) == (r["grid_verdict"], r["verdict"], r["benchmark"])

    _, page = parse(out / "compare.html")
    table = page.tables["board"]
    head = [text for _, text in table[0]]
    html_rows = [dict(zip(head, row, strict=True)) for row in table[1:]]
    assert [h["model"][1] for h in html_rows] == [r["model"] for r in rows]
    columns = {"rank": "rank", "leaked fraction": "leaked_fraction", "95% CI": "ci_low", "p": "p_value",
               "p (Holm)": "p_holm", "items": "items", "orderings": "orderings", "prompt tokens": "tokens"}  # fmt: skip
    for h, r in zip(html_rows, rows, strict=True):
        assert {c: float(h[c][0]["data-v"] or "nan") for c in columns} == {c: float(r[k]) for c, k in columns.items()}
        assert h["grid verdict"][1] == r["grid_verdict"]
        assert h["95% CI"][1] == f"{r['ci_low']:.1%} to {r['ci_high']:.1%}"
    heat = figures(page)["fig-heatmap"]["data"][0]
    assert heat["y"] == ["leaky-model", "clean-model"] and heat["x"] == ["bench/colours.jsonl"]
    assert [z[0] for z in heat["z"]] == [r["leaked_fraction"] for r in rows]
    assert "95% CI" in heat["customdata"][0][0] and f"{top['ci_low']:.1%}" in heat["customdata"][0][0]


@pytest.mark.usefixtures("runs")
def test_runs_audited_differently_are_listed_not_ranked(tmp_path: Path) -> None:
    ds = tmp_path / "bench" / "colours.jsonl"
    mmlu = audit(tmp_path, ds, leak_every=0, model="third-model", out="runs/mmlu-template", template="mmlu")
    other = audit(tmp_path, write_dataset(tmp_path / "other" / "shapes.jsonl", n=12), leak_every=0,
                  model="clean-model", out="runs/other")  # fmt: skip
    out = tmp_path / "board"
    assert main(["compare", str(tmp_path / "runs" / "*"), str(other), "--out", str(out)]) == 0  # a quoted glob
    b = board(out)
    rows = {(r["model"], r["benchmark"]): r for r in b["rows"]}
    assert len(rows) == 4 and {g["benchmark"] for g in b["benchmarks"]} == {"bench/colours.jsonl", "other/shapes.jsonl"}
    odd = rows["third-model", "bench/colours.jsonl"]
    assert not odd["comparable"] and odd["rank"] is None
    assert odd["why_not"] == "template: mmlu (the others: paper)"
    assert rows["leaky-model", "bench/colours.jsonl"]["rank"] == 1
    assert rows["clean-model", "other/shapes.jsonl"]["rank"] == 1  # alone in its benchmark
    assert Path(rows["third-model", "bench/colours.jsonl"]["run"]) == mmlu.resolve()
    assert "- not comparable: third-model" in (out / "compare.md").read_text(encoding="utf-8")
    qs = holm([r["p_value"] for r in b["rows"]])
    assert [r["p_holm"] for r in b["rows"]] == qs and all(q >= r["p_value"] for q, r in zip(qs, b["rows"], strict=True))


def test_bad_input_exits_2_in_one_line(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaky, _ = runs
    (tmp_path / "empty").mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "report.json").write_text('{"summary": {"verdict": "leakage"}}', encoding="utf-8")
    out = str(tmp_path / "board")
    cases = {
        "no report.json in this directory": [str(tmp_path / "empty")],
        "no such file or directory": [str(tmp_path / "missing")],
        "no run directory with a report.json matches": [str(tmp_path / "nothing-*")],
        "not an auditor report (no summary.leaked_fraction.estimate)": [str(broken)],
    }
    for message, paths in cases.items():
        assert main(["compare", str(leaky), *paths, "--out", out]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "board").exists()
    assert main(["compare", "--out", out]) == 2  # no RUN at all


def test_holm_and_verdict_p() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    old = {"summary": {"p_value": 0.2, "p_binomial_units": 0.3, "p_rank_sum": 0.01, "p_vs_control": None}}
    assert verdict_p(old) == (0.01, "rank-sum test")
    seq = {"summary": {}, "sequential": {"e_value_no_leakage": 40.0}}
    assert verdict_p(seq)[0] == 0.025

"""The results database: exact schema, one row per audit, concurrent writers, the documented queries."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from auditor.cli import main
from auditor.report.results_db import record_run, run_id, stored_runs
from tests.support.planted import planted_server, route, rows, write_jsonl

DOC = Path(__file__).resolve().parents[2] / "docs" / "results-db.md"

COLUMNS = {
    "runs": "run_id recorded_at out_dir model model_root base_url provider server server_version dataset"
    " dataset_sha256 template orderings max_orderings seed method null sequential partial verdict verdict_text"
    " p_verdict leaked_fraction leaked_fraction_low leaked_fraction_high n_items n_failed n_top1 chance_rate"
    " n_flagged n_order_sensitive prompts prompt_tokens tool_version first_scored last_scored report_json",
    "items": "run_id item_id subject status reason n_orderings rank rank_random p_value top1 margin z_published"
    " outlier_score best_ordering min_k flagged scenario order_sensitive order_reasons excluded answer letter"
    " cloze cloze_norm",
    "orderings": "run_id item_id k ordering published score",
    "accuracy": "run_id method population n correct accuracy low high",
}


def _run(tmp: Path, ds: Path, out: str, *extra: str, every: int = 3, model: str = "fake-model") -> dict[str, Any]:
    server, _ = planted_server(ds, every=every, model=model)
    args = ["run", "--base-url", "http://fake.test/v1", "--model", model, "--dataset", str(ds),
            "--cache", str(tmp / "cache" / "c.sqlite"), "--out", str(tmp / out), *extra]  # fmt: skip
    with route(server):
        assert main(args) == 0
    data: dict[str, Any] = json.loads((tmp / out / "report.json").read_text())
    return data


def test_every_run_lands_beside_the_cache_once_per_audit(tmp_path: Path) -> None:
    ds = write_jsonl(tmp_path / "ds.jsonl", rows(6))
    first = _run(tmp_path, ds, "a", "--accuracy")
    _run(tmp_path, ds, "b", "--accuracy")  # the same audit again (from the cache): replaced, not added
    _run(tmp_path, ds, "c", "--accuracy", "--seed", "1")  # another audit
    db = sqlite_utils.Database(tmp_path / "cache" / "results.sqlite")
    assert {t: " ".join(c.name for c in db[t].columns) for t in COLUMNS} == COLUMNS
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    runs = list(db.query("select run_id, out_dir, n_items, verdict from runs order by out_dir"))
    assert [r["out_dir"] for r in runs] == [str(tmp_path / "b"), str(tmp_path / "c")]
    assert runs[0]["run_id"] == run_id(first) and runs[0]["n_items"] == 6
    assert db["items"].count == 12 and db["orderings"].count == 2 * 6 * 24 and db["accuracy"].count == 2 * 9
    item = next(db.query("select * from items where run_id = ? and item_id = 'q0'", [runs[0]["run_id"]]))
    src = next(it for it in first["items"] if it["id"] == "q0")
    assert (item["rank"], item["flagged"], item["top1"]) == (src["rank"], int(src["flagged"]), 1)
    assert item["letter"] == item["answer"] == 0  # q0 is planted: the model knows its answer
    stored = stored_runs(tmp_path / "cache" / "results.sqlite", [runs[0]["run_id"][:6]])
    assert [s.data for s in stored] == [json.loads((tmp_path / "b" / "report.json").read_text())]


def test_results_db_flag_moves_it(tmp_path: Path) -> None:
    ds = write_jsonl(tmp_path / "ds.jsonl", rows(3))
    _run(tmp_path, ds, "a", "--results-db", str(tmp_path / "elsewhere" / "r.sqlite"))
    assert sqlite_utils.Database(tmp_path / "elsewhere" / "r.sqlite")["runs"].count == 1
    assert not (tmp_path / "cache" / "results.sqlite").exists()


WRITER = """
import json, sys
from pathlib import Path
from auditor.report.results_db import record_run
report = json.loads(Path(sys.argv[2]).read_text())
for k in range(int(sys.argv[3])):
    report["provenance"]["seed"] = 1000 * int(sys.argv[4]) + k
    record_run(Path(sys.argv[1]), report, f"w{sys.argv[4]}")
"""


def test_concurrent_writers(tmp_path: Path) -> None:
    """Four processes recording 15 runs each into one new database: every run lands, nothing is locked out."""
    report = _run(tmp_path, write_jsonl(tmp_path / "ds.jsonl", rows(4)), "a")
    path = tmp_path / "shared" / "results.sqlite"
    src = tmp_path / "a" / "report.json"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(src), "15", str(w)]) for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    db = sqlite3.connect(path)
    assert db.execute("select count(*) from runs").fetchone()[0] == 60
    assert db.execute("select count(*) from items").fetchone()[0] == 60 * len(report["items"])
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"


def test_a_schema_1_report_is_recorded_too(tmp_path: Path) -> None:
    """Reports written before the top1 renames (schema 1: `leaked`, `n_leaked`, `p_value`) still load."""
    report = _run(tmp_path, write_jsonl(tmp_path / "ds.jsonl", rows(3)), "a")
    for it in report["items"]:
        it["leaked"] = it.pop("top1", it.get("leaked"))
    s = report["summary"]
    s["n_leaked"] = s.pop("n_top1", s.get("n_leaked"))
    s.pop("p_verdict")
    s["p_value"] = s.pop("p_top1")
    rid = record_run(tmp_path / "old.sqlite", report, "old")
    row = sqlite3.connect(tmp_path / "old.sqlite").execute("select n_top1, p_verdict from runs").fetchone()
    assert rid == run_id(report) and row[0] == s["n_leaked"] and row[1] is not None


def test_documented_queries_run(tmp_path: Path) -> None:
    ds = write_jsonl(tmp_path / "ds.jsonl", rows(24))  # enough planted items for a "leakage" verdict
    _run(tmp_path, ds, "a", "--accuracy")
    _run(tmp_path, ds, "b", "--accuracy", "--seed", "3")
    queries = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(queries) >= 5
    db = sqlite3.connect(tmp_path / "cache" / "results.sqlite")
    results = [db.execute(q).fetchall() for q in queries]
    assert all(results), [q for q, r in zip(queries, results, strict=True) if not r]


def test_compare_reads_the_results_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = write_jsonl(tmp_path / "ds.jsonl", rows(24))
    _run(tmp_path, ds, "clean", "--accuracy", every=0, model="clean-model")
    leaky = _run(tmp_path, ds, "leaky", "--accuracy", every=3, model="leaky-model")
    db = tmp_path / "cache" / "results.sqlite"
    assert main(["compare", "--results-db", str(db), "--out", str(tmp_path / "board")]) == 0
    board = json.loads((tmp_path / "board" / "compare.json").read_text())
    top, other = board["rows"]
    assert (top["model"], top["rank"], top["grid_verdict"]) == ("leaky-model", 1, "leakage") and top["ci_low"] > 0
    assert (other["model"], other["grid_verdict"]) == ("clean-model", "no_evidence")
    assert other["run"] == str(tmp_path / "clean")
    letter = leaky["accuracy"]["methods"]["letter"]
    assert (top["accuracy"], top["accuracy_decontaminated"]) == (
        letter["overall"]["accuracy"],
        letter["unflagged"]["accuracy"],
    )
    assert top["accuracy"] > top["accuracy_decontaminated"]  # the planted items were answered right
    printed = capsys.readouterr().out
    assert f"{top['accuracy']:.1%} -> {top['accuracy_decontaminated']:.1%}" in printed
    # the same board from the report files
    assert main(["compare", str(tmp_path / "clean"), str(tmp_path / "leaky"), "--out", str(tmp_path / "b2")]) == 0
    again = json.loads((tmp_path / "b2" / "compare.json").read_text())
    assert again["rows"] == board["rows"]
    rid = run_id(leaky)
    assert main(["compare", "--results-db", str(db), "--run-id", rid[:8], "--out", str(tmp_path / "b3")]) == 0
    assert [r["model"] for r in json.loads((tmp_path / "b3" / "compare.json").read_text())["rows"]] == ["leaky-model"]
    assert main(["compare", "--results-db", str(db), "--run-id", "zzzz", "--out", str(tmp_path / "b4")]) == 2
    assert main(["compare", "--out", str(tmp_path / "b5")]) == 2
    assert main(["compare", str(tmp_path / "leaky"), "--results-db", str(db), "--out", str(tmp_path / "b6")]) == 0
    assert len(json.loads((tmp_path / "b6" / "compare.json").read_text())["rows"]) == 2  # not 3


def test_the_stored_report_is_json_text_sqlite_can_query(tmp_path: Path) -> None:
    """report_json goes in as UTF-8 bytes cast to text by SQLite: it is text, SQLite's JSON functions read
    it, and it reads back as the report."""
    report = _run(tmp_path, write_jsonl(tmp_path / "ds.jsonl", rows(3)), "a")
    report["items"][0]["subject"] = "caf\u00e9 \u4e2d"
    record_run(tmp_path / "r.sqlite", report, "a")
    db = sqlite3.connect(tmp_path / "r.sqlite")
    row = db.execute(
        "select typeof(report_json), json_extract(report_json, '$.summary.verdict'),"
        " json_extract(report_json, '$.items[0].subject') from runs"
    ).fetchone()
    assert row == ("text", report["summary"]["verdict"], "caf\u00e9 \u4e2d")
    assert stored_runs(tmp_path / "r.sqlite")[0].data == report


def test_dump_bytes_falls_back_to_escaped_ascii() -> None:
    """What orjson refuses (an int past 64 bits, a lone surrogate) is written by the stdlib as ASCII JSON."""
    from auditor.jsonio import dump_bytes

    value = {"big": 2**70, "text": "a\ud800", "ok": "caf\u00e9"}
    out = dump_bytes(value)
    assert out.decode("ascii") and json.loads(out) == value

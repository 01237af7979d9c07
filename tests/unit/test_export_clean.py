"""--export-clean: the unflagged items in the input's own format and as JSONL, read back by our loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from auditor.cli import main
from auditor.errors import UsageError
from auditor.input.export import check_export_target, export_clean
from auditor.input.items import Item, load_items
from tests.support.planted import planted_server, route, rows, write_jsonl, write_mmlu_dir


def _report(items: list[Item], flagged: set[str], failed: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The parts of report.json the export reads."""
    entries = [
        {"id": it.id, "flagged": it.id in flagged, "scenario": "a" if it.id in flagged else None, "p_value": 1 / 24,
         "z_published": 3.0, "order_sensitive": False, "order_reasons": []}
        for it in items if it.id not in failed
    ]  # fmt: skip
    return {
        "summary": {"method": "auditor", "verdict": "leakage", "partial": False},
        "provenance": {"endpoint": {"model": "m"}, "dataset": {"path": "d", "sha256": "0" * 64}},
        "items": entries,
        "failures": [{"id": i, "subject": "s", "reason": "HTTP 400: too long"} for i in sorted(failed)],
    }


def _same_content(a: list[Item], b: list[Item]) -> bool:
    return [(x.question, x.options, x.answer, x.subject) for x in a] == [
        (x.question, x.options, x.answer, x.subject) for x in b
    ]


FORMATS = {
    "csv-header": ("cmmlu.csv", ",Question,A,B,C,D,Answer\n0,q one?,a,b,c,d,A\n1,q two?,e,f,g,h,B\n\n"
                                "2,\"q, three?\",i,j,k,l,C\n3,q four?,m,n,o,p,D\n"),
    "jsonl-ids": ("pro.jsonl", "".join(json.dumps({"question_id": 70 + i, "question": f"q{i}?", "options":
                                                   ["x", "y", "z"], "answer": "B", "src": f"s{i}"}) + "\n\n"
                                       for i in range(4))),
    "arc": ("arc.jsonl", "".join(json.dumps({"id": f"Mercury_{i}", "question": {"stem": f"s{i}?", "choices": [
        {"label": "A", "text": "one"}, {"label": "B", "text": "two"}]}, "answerKey": "A"}) + "\n" for i in range(4))),
    "json-wrapped": ("w.json", json.dumps({"name": "bench", "items": [
        {"question": f"q{i}?", "choices": ["a", "b"], "answer": 1, "subject": "phys"} for i in range(4)]})),
    "json-list": ("l.json", json.dumps([{"query": f"q{i}?", "choices": ["a", "b", "c"]} for i in range(4)])),
}  # fmt: skip


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_round_trips(tmp_path: Path, fmt: str) -> None:
    name, text = FORMATS[fmt]
    src = tmp_path / "in" / name
    src.parent.mkdir()
    src.write_text(text, encoding="utf-8")
    items = load_items(src).items
    assert len(items) == 4
    flagged = {items[1].id}
    out = tmp_path / "clean"
    export_clean(out, load_items(src), _report(items, flagged, failed=frozenset({items[3].id})), dataset=src)
    kept = [items[0], items[2]]
    native = load_items(out / "dataset" / name).items
    assert _same_content(native, kept)
    if fmt in ("jsonl-ids", "arc"):  # explicit ids survive (ids that are row numbers are renumbered)
        assert [it.id for it in native] == [it.id for it in kept]
    assert load_items(out / "clean.jsonl").items == [
        Item(it.id, it.question, it.options, it.answer, it.subject, str(out / "clean.jsonl"), k)
        for k, it in enumerate(kept)
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kept"] == 2 and manifest["removed_counts"] == {"flagged": 1, "failed": 1}
    gone = {r["id"]: r for r in manifest["removed"]}
    assert gone[items[1].id]["scenario"] == "a" and gone[items[1].id]["p_value"] == pytest.approx(1 / 24)
    assert "too long" in gone[items[3].id]["detail"]
    if fmt == "jsonl-ids":  # the records are copied, fields we do not read included
        assert '"src": "s2"' in (out / "dataset" / name).read_text()


def test_run_exports_an_mmlu_directory_and_replaces_an_earlier_export(tmp_path: Path) -> None:
    ds = write_mmlu_dir(tmp_path / "mmlu", rows(12))
    server, leaked = planted_server(ds, every=4)
    out = tmp_path / "clean"
    args = ["run", "--base-url", "http://fake.test/v1", "--model", "fake-model", "--dataset", str(ds), "--cache",
            str(tmp_path / "c.sqlite"), "--out", str(tmp_path / "run"), "--export-clean", str(out)]  # fmt: skip
    with route(server):
        assert main(args) == 0
        report = json.loads((tmp_path / "run" / "report.json").read_text())
        flagged = {it["id"] for it in report["items"] if it["flagged"]}
        assert {it.id for it in leaked} <= flagged
        kept = [it for it in load_items(ds).items if it.id not in flagged]
        assert sorted(p.name for p in (out / "dataset").iterdir()) == sorted(p.name for p in ds.iterdir())
        assert _same_content(load_items(out / "dataset").items, kept)
        assert [it.id for it in load_items(out / "clean.jsonl").items] == [it.id for it in kept]
        (out / "stale.txt").write_text("from an earlier export")
        assert main([*args, "--items", "3"]) == 0  # an earlier export is replaced as a whole
    assert not (out / "stale.txt").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["not_audited"]["count"] == 9 and manifest["kept"] + len(manifest["removed"]) == 3


def test_export_target_is_checked_before_any_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = write_jsonl(tmp_path / "ds.jsonl", rows(3))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty and not an earlier export"):
        check_export_target(busy, ds)
    with pytest.raises(UsageError, match="inside the --dataset directory"):
        check_export_target(tmp_path / "sub", tmp_path)
    check_export_target(tmp_path / "new", ds)
    server, _ = planted_server(ds)
    with route(server):
        rc = main(["run", "--base-url", "http://fake.test/v1", "--dataset", str(ds), "--out", str(tmp_path / "r"),
                   "--cache", str(tmp_path / "c.sqlite"), "--export-clean", str(busy)])  # fmt: skip
    assert rc == 2 and "not an earlier export" in capsys.readouterr().err
    assert server.completion_requests == 0 and not (tmp_path / "r").exists()

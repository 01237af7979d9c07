"""Loaders (issue 14 point 8): HellaSwag in its original JSONL and in llama.cpp's 6-lines-per-item text,
plain, .gz or .bz2, a directory with a README beside the data, and the reference paper's example format
loading as it is (its gaps skipped and said, no flag). Slices: tests/fixtures/data (LICENSES.md)."""

from __future__ import annotations

import bz2
import gzip
import json
import shutil
from pathlib import Path

import pytest
import respx

from auditor.cli import main
from auditor.errors import DatasetError
from auditor.input.items import load_items
from tests.conftest import DATA_SLICES
from tests.support.fakeserver import FakeServer

HELLASWAG = DATA_SLICES / "hellaswag"
FIRST = "Roof shingle removal: A man is sitting on a roof. he"


def test_llama_cpp_hellaswag_directory_with_a_readme() -> None:
    r = load_items(HELLASWAG)
    assert len(r.items) == 3 and [f.name for f in r.ignored_files] == ["README.md"]
    it = r.items[0]
    assert it.question == FIRST and it.answer == 3 and len(it.options) == 4
    assert it.id == "hellaswag_val:0" and it.subject == "Roof shingle removal"
    assert it.options[3] == "starts pulling up roofing on a roof."


@pytest.mark.parametrize("name", ["h.txt", "h.txt.gz", "h.txt.bz2"])
def test_hellaswag_text_plain_or_compressed(name: str, tmp_path: Path) -> None:
    text = bz2.decompress((HELLASWAG / "hellaswag_val.txt.bz2").read_bytes())
    pack = {"h.txt": lambda b: b, "h.txt.gz": gzip.compress, "h.txt.bz2": bz2.compress}[name]
    (tmp_path / name).write_bytes(pack(text))
    items = load_items(tmp_path / name).items
    assert [it.answer for it in items] == [3, 3, 2] and items[0].question == FIRST and items[0].id == "h:0"


def test_hellaswag_text_with_a_broken_record_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "h.txt").write_text("context\n3\na\nb\nc\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="not a multiple of 6"):
        load_items(tmp_path / "h.txt")


@pytest.mark.parametrize("name", ["val.jsonl", "val.jsonl.gz"])
def test_hellaswag_original_jsonl(name: str, tmp_path: Path) -> None:
    rows = [{"ind": 24 + i, "activity_label": "Roof shingle removal", "ctx_a": "A man is on a roof.", "ctx_b": "he",
             "ctx": "A man is on a roof. he", "split": "val", "split_type": "indomain", "source_id": "x",
             "endings": [f"ending {i}-{k}" for k in range(4)], "label": i % 4} for i in range(3)]  # fmt: skip
    text = "".join(json.dumps(r) + "\n" for r in rows).encode()
    (tmp_path / name).write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    items = load_items(tmp_path / name).items
    assert [it.id for it in items] == ["24", "25", "26"] and [it.answer for it in items] == [0, 1, 2]
    assert items[0].question == "Roof shingle removal: A man is on a roof. he" and items[0].options[0] == "ending 0-0"
    assert items[0].subject == "Roof shingle removal"


def test_other_text_files_in_a_directory_are_passed_over(tmp_path: Path) -> None:
    shutil.copy(HELLASWAG / "hellaswag_val.txt.bz2", tmp_path)
    (tmp_path / "possibly_contaminated_urls.txt").write_text("http://a.example\nhttp://b.example\n", encoding="utf-8")
    (tmp_path / "README.txt").write_text("about\n3\nthis\nlooks\nlike\nitems\n", encoding="utf-8")
    r = load_items(tmp_path)
    assert len(r.items) == 3 and sorted(f.name for f in r.ignored_files) == [
        "README.txt",
        "possibly_contaminated_urls.txt",
    ]


def reference_example(path: Path) -> Path:
    """The reference paper's input format (Ni et al.'s example_data.json layout), with its known gaps: an
    empty option E and two identical options (synthetic items; the staged CMB file states no licence)."""
    rows = [{"question": f"问题 {i}", "option": {"A": f"甲{i}", "B": f"乙{i}", "C": f"丙{i}", "D": f"丁{i}",
                                                 "E": f"戊{i}"}} for i in range(6)]  # fmt: skip
    rows[2]["option"]["E"] = ""
    rows[4]["option"]["E"] = rows[4]["option"]["D"]
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def test_reference_example_loads_as_it_is(tmp_path: Path) -> None:
    r = load_items(reference_example(tmp_path / "example_data.json"))
    assert len(r.items) == 4 and len(r.skipped) == 2
    assert [s.row for s in r.skipped] == [2, 4]
    assert r.skipped[0].reason == "option E is empty" and "identical" in r.skipped[1].reason


def test_reference_example_run_says_what_was_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = reference_example(tmp_path / "example_data.json")
    router = respx.mock(assert_all_called=False)
    router.route(host="fake.test").mock(side_effect=FakeServer().handler)
    with router:
        code = main(["run", "--base-url", "http://fake.test/v1", "--model", "fake-model", "--dataset", str(ds),
                     "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite")])  # fmt: skip
    err = capsys.readouterr().err
    assert code in (0, 6)  # 4 items may be too few to decide
    assert "2 item(s) skipped as invalid (option X is empty: 1; options X and X are identical: 1)" in err
    report = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["n_skipped_invalid"] == 2 and len(report["skipped_invalid"]) == 2
    md = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "## Skipped as invalid" in md and "row 2: option E is empty" in md

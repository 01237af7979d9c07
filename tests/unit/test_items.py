"""Tests for auditor.input.items: every supported format (from slices of the real benchmark files), the id
scheme, answer and subject parsing, file ordering, and malformed input.

The format tests copy records of real benchmark files into tmp_path: MMLU, ARC and MMLU-Pro from the slices in
tests/fixtures/data (with their licences); CMMLU, C-Eval, the reference paper's example and whole benchmarks from
../shared/data, in tests marked `shared_data` (CI runs them; they skip when the data is not beside the repo).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from auditor.errors import DatasetError
from auditor.input.items import Item, LoadResult, load_items
from tests.conftest import DATA_SLICES

# ---------------------------------------------------------------- helpers


def csv_slice(src: Path, start: int, stop: int, *, header: bool) -> str:
    """Records [start, stop) of a CSV file, copied byte for byte (the header too when `header`)."""
    text = src.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text, newline=""))
    bounds = [0]  # physical line where each record starts
    for _ in reader:
        bounds.append(reader.line_num)
    first = 1 if header else 0
    head = "".join(lines[: bounds[1]]) if header else ""
    return head + "".join(lines[bounds[first + start] : bounds[first + stop]])


def jsonl_slice(src: Path, *line_numbers: int) -> str:
    """The given 0-based lines of a JSONL file (split on '\\n' only, as JSONL defines lines)."""
    lines = src.read_text(encoding="utf-8").split("\n")
    return "".join(lines[i] + "\n" for i in line_numbers)


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def jsonl(*records: Any) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def load_one(tmp_path: Path, name: str, content: str | bytes, **kwargs: Any) -> LoadResult:
    return load_items(write(tmp_path, name, content), **kwargs)


# ---------------------------------------------------------------- formats, from real data


def test_mmlu_headerless_csv(tmp_path: Path) -> None:
    src = DATA_SLICES / "mmlu/test/abstract_algebra_test.csv"
    res = load_one(tmp_path, "abstract_algebra_test.csv", csv_slice(src, 0, 3, header=False))
    assert [i.id for i in res.items] == [f"abstract_algebra_test:{k}" for k in range(3)]
    first = res.items[0]
    assert first == Item(
        id="abstract_algebra_test:0",
        question="Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.",
        options=("0", "4", "2", "6"),
        answer=1,
        subject="abstract_algebra",
        source=str(tmp_path / "abstract_algebra_test.csv"),
        row=0,
    )
    # quoted options that contain commas stay single options
    assert res.items[2].options == ("0", "1", "0,1", "0,4")
    assert res.items[2].answer == 3
    assert res.skipped == [] and res.ignored_files == []


@pytest.mark.shared_data
def test_cmmlu_csv_with_unnamed_index_column(tmp_path: Path, shared_data: Path) -> None:
    # rows 100..102: the index column says 100..102, but an unnamed index is not an id
    src = shared_data / "cmmlu/test/agronomy.csv"
    res = load_one(tmp_path, "agronomy.csv", csv_slice(src, 100, 103, header=True))
    assert [i.id for i in res.items] == ["agronomy:0", "agronomy:1", "agronomy:2"]
    item = res.items[0]
    assert item.question == "植物体内产生的生理活性物质，称为"  # noqa: RUF001
    assert item.options == ("植物生长调节剂", "植物激素", "类激素物质", "植物生长促进剂")
    assert item.answer == 1
    assert item.subject == "agronomy"


@pytest.mark.shared_data
def test_ceval_csv_with_id_column(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "ceval/val/accountant_val.csv"
    res = load_one(tmp_path, "accountant_val.csv", csv_slice(src, 10, 13, header=True))
    # the C-Eval id column is per file, so it is qualified by the stem; row is still the data row
    assert [i.id for i in res.items] == ["accountant_val:10", "accountant_val:11", "accountant_val:12"]
    assert [i.row for i in res.items] == [0, 1, 2]
    assert res.items[0].question.startswith("下列各项中，不属于注册会计师职业道德守则禁止的商业关系的是")  # noqa: RUF001
    assert res.items[0].answer == 0
    assert len(res.items[0].options) == 4
    assert {i.subject for i in res.items} == {"accountant"}


@pytest.mark.shared_data
def test_ceval_test_split_has_no_answers(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "ceval/test/accountant_test.csv"
    res = load_one(tmp_path, "accountant_test.csv", csv_slice(src, 0, 3, header=True))
    assert [i.answer for i in res.items] == [None, None, None]
    assert res.items[0].options[3] == "代理理论是对权衡理论的扩展"
    assert res.items[0].subject == "accountant"


@pytest.mark.shared_data
def test_ceval_dev_explanation_column_is_not_an_option(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "ceval/dev/accountant_dev.csv"
    res = load_one(tmp_path, "accountant_dev.csv", csv_slice(src, 0, 2, header=True))
    assert res.items[0].options == ("增量预算", "零基预算", "固定预算", "弹性预算")
    assert res.items[0].answer == 1


def test_arc_original_jsonl(tmp_path: Path) -> None:
    # the slice holds dev line 0 (4 choices), dev line 35 (3 choices) and test line 823 (5 choices)
    content = (DATA_SLICES / "arc/ARC-Challenge-Dev.jsonl").read_text(encoding="utf-8")
    res = load_one(tmp_path, "ARC-Challenge-Dev.jsonl", content)
    a, b, c = res.items
    assert a.id == "Mercury_SC_407695"
    assert a.question.startswith("Juan and LaKeisha roll a few objects down a ramp.")
    assert a.options == (
        "Put the objects in groups.",
        "Change the height of the ramp.",
        "Choose different objects to roll.",
        "Record the details of the investigation.",
    )
    assert a.answer == 3
    assert (b.id, b.options, b.answer) == ("NYSEDREGENTS_2014_4_4", ("gas", "liquid", "solid"), 0)
    assert (c.id, len(c.options), c.answer) == ("TIMSS_1995_8_J7", 5, 3)
    assert [i.row for i in res.items] == [0, 1, 2]


def test_mmlu_pro_jsonl(tmp_path: Path) -> None:
    src = DATA_SLICES / "mmlu_pro/test.jsonl"
    res = load_one(tmp_path, "test.jsonl", jsonl_slice(src, 0, 1, 2))
    first = res.items[0]
    assert first.id == "70"  # question_id, an int in the file
    assert first.question.startswith("Typical advertising regulatory bodies suggest")
    assert len(first.options) == 9
    assert first.options[8] == "Unsafe practices, Distress, Fear, Serious"
    assert first.answer == 8  # "answer": "I"
    assert first.subject == "business"  # "category"


def test_mmlu_pro_line_with_nel_character(tmp_path: Path) -> None:
    """Line 5073 of the real file (4 of the slice) has U+0085 (NEL) inside a string; JSONL lines end only at '\\n'."""
    src = DATA_SLICES / "mmlu_pro/test.jsonl"
    res = load_one(tmp_path, "test.jsonl", jsonl_slice(src, 3, 4, 5))
    assert len(res.items) == 3
    assert res.items[1].id == "5215"
    assert "\x85" in res.items[1].question


@pytest.mark.shared_data
def test_mmlu_pro_whole_file(shared_data: Path) -> None:
    res = load_items(shared_data / "mmlu_pro/test.jsonl", skip_invalid=True)
    assert len(res.items) + len(res.skipped) == 12030
    assert len(res.skipped) == 1 and "identical" in res.skipped[0].reason
    assert len({i.id for i in res.items}) == len(res.items)


@pytest.mark.shared_data
def test_reference_paper_format(tmp_path: Path, shared_data: Path) -> None:
    data = json.loads((shared_data / "reference_ni2024_example/example_data.json").read_text(encoding="utf-8"))
    content = json.dumps([data[0], data[1], data[57]], ensure_ascii=False, indent=4)
    res = load_one(tmp_path, "example_data.json", content)
    assert [i.id for i in res.items] == ["example_data:0", "example_data:1", "example_data:2"]
    assert res.items[0].question == "下列有关鳃弓的描述，错误的是"  # noqa: RUF001
    assert res.items[0].options == (
        "由间充质增生形成",
        "人胚第4周出现",
        "相邻鳃弓之间为鳃沟",
        "共5对鳃弓",
        "位于头部两侧",
    )
    assert res.items[0].answer is None
    assert res.items[2].options[5] == "妊娠"  # 6-option item
    assert res.items[0].subject == "example_data"


def test_reference_paper_format_orders_options_by_label(tmp_path: Path) -> None:
    record = {"question": "q?", "option": {"C": "third", "A": "first", "B": "second"}, "answer": "C"}
    res = load_one(tmp_path, "paper.json", json.dumps([record]))
    assert res.items[0].options == ("first", "second", "third")
    assert res.items[0].answer == 2


# rows of the real file whose options include "" (row 838: D and E; the others: E), and one with a repeated option
ROWS_WITH_EMPTY_OPTION = [12, 24, 67, 91, 225, 338, 362, 827, 838, 903, 934]
ROW_WITH_DUPLICATE_OPTIONS = 120


@pytest.mark.shared_data
def test_reference_paper_file_invalid_rows(shared_data: Path) -> None:
    """The reference paper's own example file loads as it is (its format is lenient since 0776ec0): the 12
    rows with an empty or repeated option are skipped and recorded, with or without --skip-invalid."""
    path = shared_data / "reference_ni2024_example/example_data.json"
    for res in (load_items(path), load_items(path, skip_invalid=True)):
        assert len(res.items) == 988
        assert sorted(s.row for s in res.skipped if s.row is not None) == sorted(
            [*ROWS_WITH_EMPTY_OPTION, ROW_WITH_DUPLICATE_OPTIONS]
        )
        assert all("empty" in s.reason for s in res.skipped if s.row != ROW_WITH_DUPLICATE_OPTIONS)
        assert "identical" in next(s.reason for s in res.skipped if s.row == ROW_WITH_DUPLICATE_OPTIONS)


@pytest.mark.shared_data
def test_whole_mmlu_test_directory(shared_data: Path) -> None:
    path = shared_data / "mmlu/test"
    res = load_items(path, skip_invalid=True)
    assert len(res.files) == 57
    # 14,042 data rows; 9 of them repeat an option verbatim and are skipped as invalid
    assert len(res.items) + len(res.skipped) == 14042
    assert len(res.skipped) == 9
    assert all("identical" in s.reason for s in res.skipped)
    assert len({i.id for i in res.items}) == len(res.items)
    assert res.items[0].id == "abstract_algebra_test:0"
    assert res.items[-1].subject == "world_religions"
    assert res.ignored_files == []
    # without skip_invalid the first offending row, in sorted file order, is reported
    with pytest.raises(DatasetError) as exc:
        load_items(path)
    assert exc.value.file.endswith("business_ethics_test.csv")
    assert exc.value.row == 2


# ---------------------------------------------------------------- ids


def test_id_from_id_and_question_id_fields(tmp_path: Path) -> None:
    content = jsonl(
        {"id": "q-a", "question": "one?", "choices": ["x", "y"]},
        {"question_id": 17, "question": "two?", "choices": ["x", "y"]},
        {"question": "three?", "choices": ["x", "y"]},
    )
    res = load_one(tmp_path, "mixed_ids.jsonl", content)
    assert [i.id for i in res.items] == ["q-a", "17", "mixed_ids:2"]


def test_row_ids_count_data_rows_not_lines(tmp_path: Path) -> None:
    rows = 'q0,a,b,A\n\n"multi\nline q1",a,b,B\nq2,a,b,A\n'
    res = load_one(tmp_path, "sub_test.csv", rows)
    assert [i.id for i in res.items] == ["sub_test:0", "sub_test:1", "sub_test:2"]
    assert res.items[1].question == "multi\nline q1"
    j = jsonl({"question": "a?", "choices": ["1", "2"]}) + "\n\n" + jsonl({"question": "b?", "choices": ["1", "2"]})
    res = load_one(tmp_path, "blank.jsonl", j)
    assert [i.id for i in res.items] == ["blank:0", "blank:1"]


def test_ids_do_not_depend_on_the_directory(tmp_path: Path) -> None:
    content = "q0,a,b,A\nq1,a,b,B\n"
    one = load_one(tmp_path / "one", "astronomy_test.csv", content)
    two = load_items(write(tmp_path / "elsewhere" / "deep", "astronomy_test.csv", content).parent.parent)
    assert [i.id for i in one.items] == [i.id for i in two.items] == ["astronomy_test:0", "astronomy_test:1"]


def test_empty_csv_id_falls_back_to_row(tmp_path: Path) -> None:
    content = "id,question,A,B,answer\n7,q0,a,b,A\n,q1,a,b,B\n"
    res = load_one(tmp_path, "x_val.csv", content)
    assert [i.id for i in res.items] == ["x_val:7", "x_val:1"]


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"answer": "B"}, 1),
        ({"answer": "c"}, 2),
        ({"answer": " D "}, 3),
        ({"answer": 0}, 0),
        ({"answer": 3}, 3),
        ({"answer_index": 2}, 2),
        ({"gold": 1}, 1),
        ({"answer": "A", "answer_index": 3}, 0),  # MMLU-Pro has both; the letter wins
        ({}, None),
        ({"answer": ""}, None),
        ({"answer": None}, None),
    ],
)
def test_answer_parsing_json(tmp_path: Path, record: dict[str, Any], expected: int | None) -> None:
    base = {"question": "q?", "choices": ["w", "x", "y", "z"]}
    res = load_one(tmp_path, "a.jsonl", jsonl(base | record))
    assert res.items[0].answer == expected


@pytest.mark.parametrize(("key", "expected"), [("1", 0), ("2", 1), ("3", 2), ("4", 3), (4, 3)])
def test_answer_parsing_arc_numeric_labels(tmp_path: Path, key: Any, expected: int) -> None:
    # the shape of ARC's NYSED items, whose labels are "1".."4"
    record = {
        "id": "NYSEDREGENTS_2008_4_1",
        "question": {
            "stem": "Which tool should be used to measure mass?",
            "choices": [{"text": t, "label": str(k)} for k, t in enumerate(["ruler", "balance", "cup", "clock"], 1)],
        },
        "answerKey": key,
    }
    res = load_one(tmp_path, "arc.jsonl", jsonl(record))
    assert res.items[0].answer == expected
    assert res.items[0].options == ("ruler", "balance", "cup", "clock")


def test_answer_parsing_csv_letters(tmp_path: Path) -> None:
    res = load_one(tmp_path, "s_test.csv", "q0,a,b,c,A\nq1,a,b,c,c\nq2,a,b,c, B\nq3,a,b,c,\n")
    assert [i.answer for i in res.items] == [0, 2, 1, None]


# ---------------------------------------------------------------- subjects


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("college_physics_test.csv", "college_physics"),
        ("college_physics_val.csv", "college_physics"),
        ("college_physics_dev.csv", "college_physics"),
        ("agronomy.csv", "agronomy"),
        ("unit_testing.csv", "unit_testing"),
        ("test.csv", "test"),
    ],
)
def test_subject_from_file_stem(tmp_path: Path, name: str, subject: str) -> None:
    res = load_one(tmp_path, name, "q,a,b,A\n")
    assert res.items[0].subject == subject


def test_subject_from_json_fields(tmp_path: Path) -> None:
    content = jsonl(
        {"question": "q0", "choices": ["a", "b"], "category": "law"},
        {"question": "q1", "choices": ["a", "b"], "subject": "virology", "category": "health"},
        {"question": "q2", "choices": ["a", "b"], "subject": ""},
        {"question": "q3", "option": {"A": "a", "B": "b"}, "subject": "anatomy"},
    )
    res = load_one(tmp_path, "mixed_test.jsonl", content)
    assert [i.subject for i in res.items] == ["law", "virology", "mixed", "anatomy"]


# ---------------------------------------------------------------- directories and order


def make_tree(root: Path) -> None:
    # written in an order that is neither name order nor path order
    write(root, "b/a_test.csv", "qb,x,y,A\n")
    write(root, "c.txt", "notes\n")
    write(root, "a/z.jsonl", jsonl({"question": "qz", "choices": ["x", "y"]}))
    write(root, ".hidden.csv", "q,x,y,A\n")
    write(root, "a.json", json.dumps([{"question": "qa", "option": {"A": "x", "B": "y"}}]))
    write(root, "a/m.csv", ",Question,A,B,Answer\n0,qm,x,y,B\n")
    write(root, "README.md", "# data\n")


def test_directory_is_recursive_sorted_by_relative_path(tmp_path: Path) -> None:
    make_tree(tmp_path)
    res = load_items(tmp_path)
    rel = [p.relative_to(tmp_path).as_posix() for p in res.files]
    assert rel == ["a.json", "a/m.csv", "a/z.jsonl", "b/a_test.csv"]
    assert [i.question for i in res.items] == ["qa", "qm", "qz", "qb"]
    assert [p.relative_to(tmp_path).as_posix() for p in res.ignored_files] == ["README.md", "c.txt"]


def test_order_is_stable_across_loads_and_copies(tmp_path: Path) -> None:
    make_tree(tmp_path / "one")
    make_tree(tmp_path / "two")
    one, again, two = load_items(tmp_path / "one"), load_items(tmp_path / "one"), load_items(tmp_path / "two")
    assert one.items == again.items
    assert [(i.id, i.question, i.options) for i in one.items] == [(i.id, i.question, i.options) for i in two.items]


def test_mixed_formats_in_one_directory(tmp_path: Path) -> None:
    write(tmp_path, "mmlu_test.csv", "q0,a,b,c,d,A\n")
    write(tmp_path, "cmmlu.csv", ",Question,A,B,C,D,Answer\n0,q1,a,b,c,d,B\n")
    write(tmp_path, "ceval_val.csv", "id,question,A,B,C,D,answer\n0,q2,a,b,c,d,C\n")
    write(tmp_path, "pro.jsonl", jsonl({"question_id": 1, "question": "q3", "options": ["a", "b", "c"], "answer": "C"}))
    arc = {
        "id": "arc1",
        "question": {"stem": "q4", "choices": [{"label": "A", "text": "a"}, {"label": "B", "text": "b"}]},
    }
    write(tmp_path, "arc.jsonl", jsonl(arc | {"answerKey": "B"}))
    write(tmp_path, "paper.json", json.dumps({"data": [{"question": "q5", "option": {"A": "a", "B": "b"}}]}))
    write(tmp_path, "notes.parquet", b"PAR1")
    res = load_items(tmp_path)
    assert sorted(i.question for i in res.items) == ["q0", "q1", "q2", "q3", "q4", "q5"]
    assert {i.question: i.answer for i in res.items} == {"q0": 0, "q1": 1, "q2": 2, "q3": 2, "q4": 1, "q5": None}
    assert [p.name for p in res.ignored_files] == ["notes.parquet"]
    assert len(res.files) == 6


def test_missing_path_and_unsupported_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_items(tmp_path / "nope")
    with pytest.raises(DatasetError, match=r"unsupported file type '\.xml'"):
        load_items(write(tmp_path, "x.xml", "q,a,b,A\n"))
    write(tmp_path, "d/readme.md", "hi\n")
    with pytest.raises(DatasetError, match=r"no \.csv, \.jsonl, \.json or \.txt files"):
        load_items(tmp_path / "d")


def test_all_rows_invalid_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.jsonl", jsonl({"question": "", "choices": ["a", "b"]}, {"question": "q"}))
    with pytest.raises(DatasetError, match=r"no valid items \(2 skipped as invalid\)"):
        load_items(path, skip_invalid=True)


# ---------------------------------------------------------------- malformed input


class Case(NamedTuple):
    """`files` are written under tmp_path and the directory is loaded. `bad` is the file the error must
    name, `row` the row it must name (None: a file-level problem). Row-level problems are skipped with
    skip_invalid=True, leaving `n_good` items; file-level ones still raise."""

    files: dict[str, str | bytes]
    bad: str
    match: str
    row: int | None
    field: str | None = None
    n_good: int = 0


BIG = "x" * 3_000_000
GOOD_ROW = "What is 2+2?,3,4,5,6,B\n"
GOOD_REC = {"question": "What is 2+2?", "choices": ["3", "4"], "answer": 1}
ARC_OK = {"id": "ok", "question": {"stem": "s?", "choices": [{"label": "A", "text": "a"}, {"label": "B", "text": "b"}]}}

CASES: dict[str, Case] = {
    # --- CSV, row level
    "csv_missing_column": Case(
        {"m_test.csv": GOOD_ROW + "q,a,b,c,B\n" + GOOD_ROW}, "m_test.csv", r"expected 6 columns.*found 5", 1, n_good=2
    ),
    "csv_extra_column_in_first_row": Case(
        {"m_test.csv": "q,a,b,c,d,e,B\n" + GOOD_ROW + GOOD_ROW},
        "m_test.csv",
        r"expected 6 columns.*found 7",
        0,
        n_good=2,
    ),
    "csv_header_column_count": Case(
        {"c.csv": ",Question,A,B,C,D,Answer\n0,q,a,b,c,d,A\n1,q,a,b,c,A\n"}, "c.csv", r"expected 7 columns", 1, n_good=1
    ),
    "csv_empty_option": Case({"m_test.csv": GOOD_ROW + "q,a,,c,d,A\n"}, "m_test.csv", "option B is empty", 1, "B", 1),
    "csv_blank_option": Case({"m_test.csv": GOOD_ROW + "q,a,b,  ,d,A\n"}, "m_test.csv", "option C is empty", 1, "C", 1),
    "csv_duplicate_options": Case(
        {"m_test.csv": GOOD_ROW + "q,same,b,same,d,A\n"}, "m_test.csv", "options A and C are identical", 1, "options", 1
    ),
    "csv_duplicate_options_modulo_space": Case(
        {"m_test.csv": GOOD_ROW + "q,a,b ,c, b,A\n"}, "m_test.csv", "options B and D are identical", 1, "options", 1
    ),
    "csv_missing_question": Case(
        {"m_test.csv": GOOD_ROW + " ,a,b,c,d,A\n"}, "m_test.csv", "missing question", 1, "question", 1
    ),
    "csv_unknown_answer_letter": Case(
        {"m_test.csv": GOOD_ROW + "q,a,b,c,d,E\n"},
        "m_test.csv",
        r"unknown answer 'E' for 4 options",
        1,
        "answer",
        1,
    ),
    "csv_answer_not_a_letter": Case(
        {"m_test.csv": GOOD_ROW + "q,a,b,c,d,AB\n"}, "m_test.csv", "unknown answer 'AB'", 1, "answer", 1
    ),
    "csv_3mb_option": Case(
        {"m_test.csv": GOOD_ROW + f"q,a,{BIG},c,d,A\n" + GOOD_ROW},
        "m_test.csv",
        "option B is 3,000,000 characters",
        1,
        "B",
        2,
    ),
    "ceval_duplicate_options": Case(
        {"law_val.csv": "id,question,A,B,C,D,answer\n0,q,a,b,c,d,A\n1,q,a,b,a,d,A\n"},
        "law_val.csv",
        "options A and C are identical",
        1,
        "options",
        1,
    ),
    # --- JSON / JSONL, row level
    "jsonl_3mb_option": Case(
        {"p.jsonl": jsonl(GOOD_REC, {"question": "q", "choices": ["a", BIG]})},
        "p.jsonl",
        "option B is 3,000,000",
        1,
        "B",
        1,
    ),
    "jsonl_one_option": Case(
        {"p.jsonl": jsonl(GOOD_REC, {"question": "q", "choices": ["only"]})}, "p.jsonl", "at least 2", 1, "options", 1
    ),
    "jsonl_no_options": Case(
        {"p.jsonl": jsonl(GOOD_REC, {"question": "q", "options": []})}, "p.jsonl", "at least 2", 1, "options", 1
    ),
    "jsonl_missing_question": Case(
        {"p.jsonl": jsonl({"choices": ["a", "b"]}, GOOD_REC)}, "p.jsonl", "missing question", 0, "question", 1
    ),
    "jsonl_missing_choices": Case(
        {"p.jsonl": jsonl(GOOD_REC, {"question": "q"})}, "p.jsonl", "no options", 1, "choices", 1
    ),
    "jsonl_choices_not_a_list": Case(
        {"p.jsonl": jsonl(GOOD_REC, {"question": "q", "choices": "a,b"})}, "p.jsonl", "must be a list", 1, "choices", 1
    ),
    "jsonl_option_not_text": Case(
        {"p.jsonl": jsonl(GOOD_REC, {"question": "q", "choices": ["a", {"text": "b"}]})},
        "p.jsonl",
        r"option B is not text \(dict\)",
        1,
        "B",
        1,
    ),
    "jsonl_answer_out_of_range": Case(
        {"p.jsonl": jsonl(GOOD_REC, {"question": "q", "choices": ["a", "b"], "answer": 2})},
        "p.jsonl",
        "out of range for 2 options",
        1,
        "answer",
        1,
    ),
    "jsonl_answer_bool": Case(
        {"p.jsonl": jsonl(GOOD_REC, {"question": "q", "choices": ["a", "b"], "answer": True})},
        "p.jsonl",
        "not a letter or index",
        1,
        "answer",
        1,
    ),
    "jsonl_record_not_an_object": Case(
        {"p.jsonl": jsonl(GOOD_REC, [1, 2])}, "p.jsonl", "expected a JSON object", 1, n_good=1
    ),
    "jsonl_invalid_line": Case(
        {"p.jsonl": jsonl(GOOD_REC) + '{"question": "q", "choices": ["a", "b"]\n' + jsonl(GOOD_REC | {"id": "2"})},
        "p.jsonl",
        "invalid JSON on line 2",
        1,
        n_good=2,
    ),
    "arc_unknown_answer_key": Case(
        {"arc.jsonl": jsonl(ARC_OK | {"answerKey": "E"}, ARC_OK | {"id": "ok2", "answerKey": "A"})},
        "arc.jsonl",
        "unknown answer 'E'",
        0,
        "answer",
        1,
    ),
    "arc_choices_malformed": Case(
        {"arc.jsonl": jsonl({"id": "x", "question": {"stem": "s", "choices": ["a", "b"]}}, ARC_OK)},
        "arc.jsonl",
        "question.choices must be a list",
        0,
        n_good=1,
    ),
    "arc_empty_stem": Case(
        {"arc.jsonl": jsonl(ARC_OK, {"id": "y", "question": {"stem": "", "choices": ARC_OK["question"]["choices"]}})},
        "arc.jsonl",
        "missing question",
        1,
        "question",
        1,
    ),
    "json_null_option": Case(
        {"d.json": json.dumps([GOOD_REC, {"question": "q", "choices": ["a", None]}])},
        "d.json",
        "option B is empty",
        1,
        "B",
        1,
    ),
    # --- file level
    "latin1_bytes": Case(
        {"ok_test.csv": GOOD_ROW, "m_test.csv": (GOOD_ROW + "caf\xe9,a,b,c,d,A\n").encode("latin-1")},
        "m_test.csv",
        r"not valid UTF-8 \(byte \d+, line 2\)",
        None,
    ),
    "utf16_jsonl": Case({"p.jsonl": jsonl(GOOD_REC).encode("utf-16")}, "p.jsonl", "not valid UTF-8", None),
    "csv_unterminated_quote": Case(
        {"m_test.csv": GOOD_ROW + '"What is 2+2?,3,4,5,6,B\n' + GOOD_ROW}, "m_test.csv", "malformed CSV", None
    ),
    "csv_stray_quote_after_field": Case(
        {"m_test.csv": GOOD_ROW + '"What is" 2+2?,3,4,5,6,B\n'}, "m_test.csv", r"malformed CSV near line 2", None
    ),
    "empty_csv": Case({"ok_test.csv": GOOD_ROW, "e_test.csv": ""}, "e_test.csv", "file is empty", None),
    "csv_only_empty_cells": Case({"m_test.csv": ",,,\n , ,\n"}, "m_test.csv", "no rows", None),
    "csv_header_only": Case(
        {"ok_test.csv": GOOD_ROW, "h.csv": ",Question,A,B,C,D,Answer\n"}, "h.csv", "no items in file", None
    ),
    "json_empty_array": Case({"ok_test.csv": GOOD_ROW, "d.json": "[]"}, "d.json", "no items in file", None),
    "blank_jsonl": Case({"p.jsonl": "\n  \n"}, "p.jsonl", "file is empty", None),
    "invalid_json": Case(
        {"d.json": '[{"question": "q", "choices": ["a", "b"],}]'}, "d.json", r"invalid JSON at line 1", None
    ),
    "jsonl_in_a_json_file": Case(
        {"d.json": jsonl(GOOD_REC, GOOD_REC)}, "d.json", r"invalid JSON at line 2.*Extra data", None
    ),
    "json_not_an_array": Case({"d.json": '"just a string"'}, "d.json", "expected a JSON array", None),
    "csv_header_too_few_options": Case(
        {"h.csv": "id,question,A,answer\n0,q,a,A\n"}, "h.csv", "fewer than 2 option columns", None
    ),
    "csv_too_few_columns": Case({"m_test.csv": "q,a,A\nq,b,B\n"}, "m_test.csv", "3 columns", None),
    "duplicate_ids_across_files": Case(
        {"a.jsonl": jsonl(GOOD_REC | {"id": "x1"}), "b.jsonl": jsonl(GOOD_REC | {"id": "x0"}, GOOD_REC | {"id": "x1"})},
        "b.jsonl",
        r"duplicate id 'x1' \(first seen in .*a\.jsonl, row 0\)",
        1,
        "id",
    ),
    "duplicate_row_ids_same_stem": Case(
        {
            "dev/agronomy.csv": ",Question,A,B,Answer\n0,q,a,b,A\n",
            "test/agronomy.csv": ",Question,A,B,Answer\n0,q,a,b,A\n",
        },
        "test/agronomy.csv",
        r"duplicate id 'agronomy:0'.*dev/agronomy\.csv",
        0,
        "id",
    ),
}

ROW_LEVEL = [k for k, c in CASES.items() if c.n_good]


def _write_case(root: Path, case: Case) -> Path:
    for name, content in case.files.items():
        write(root, name, content)
    return root / case.bad


@pytest.mark.parametrize("name", CASES)
def test_malformed_input_raises_a_located_error(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    bad = _write_case(tmp_path, case)
    with pytest.raises(DatasetError) as exc:
        load_items(tmp_path)
    err = exc.value
    text = str(err)
    assert err.file == str(bad)
    assert text.startswith(f"{bad}"), text  # the file comes first ...
    assert re.search(case.match, text), text  # ... then what is wrong ...
    assert err.fix and text.endswith(f"({err.fix})"), text  # ... and how to fix it
    assert err.row == case.row
    if case.row is not None:
        assert f", row {case.row}" in text
    else:
        assert ", row " not in text
    if case.field is not None:
        assert err.field == case.field and f"field '{case.field}'" in text
    assert "\n" not in text and len(text) < 600, "one short line, even for a 3 MB field"


def test_long_csv_field_leaves_the_csv_module_limit_alone(tmp_path: Path) -> None:
    before = csv.field_size_limit()
    res = load_one(tmp_path, "m_test.csv", GOOD_ROW + f"q,a,{BIG},c,d,A\n", skip_invalid=True)
    assert [s.row for s in res.skipped] == [1]
    assert csv.field_size_limit() == before


@pytest.mark.parametrize("name", ROW_LEVEL)
def test_skip_invalid_skips_row_level_problems(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    bad = _write_case(tmp_path, case)
    res = load_items(tmp_path, skip_invalid=True)
    assert len(res.items) == case.n_good
    assert [(s.file, s.row) for s in res.skipped] == [(str(bad), case.row)]
    assert re.search(case.match, res.skipped[0].reason)
    assert all(i.row != case.row for i in res.items if i.source == str(bad))


@pytest.mark.parametrize("name", [k for k in CASES if k not in ROW_LEVEL])
def test_skip_invalid_does_not_hide_file_level_problems(tmp_path: Path, name: str) -> None:
    _write_case(tmp_path, CASES[name])
    with pytest.raises(DatasetError, match=CASES[name].match):
        load_items(tmp_path, skip_invalid=True)


def test_there_are_enough_malformed_cases() -> None:
    assert len(CASES) >= 20
    assert len(ROW_LEVEL) >= 10


def test_limit_stops_before_problems_further_on(tmp_path: Path) -> None:
    (tmp_path / "a_test.csv").write_text("Q1?,w,x,y,z,A\nQ2?,w,x,y,z,B\n")
    (tmp_path / "b_test.csv").write_text("Q3?,same,same,y,z,A\n")  # invalid, but past the limit
    res = load_items(tmp_path, limit=2)
    assert [it.id for it in res.items] == ["a_test:0", "a_test:1"]
    with pytest.raises(DatasetError, match=r"b_test\.csv"):
        load_items(tmp_path, limit=3)


def test_the_reference_papers_format_skips_its_gaps_without_a_flag(tmp_path: Path) -> None:
    """Its example file has empty and single options: such items are skipped and recorded, flag or not
    (formerly the paper_empty_option / paper_single_option cases of CASES, which stopped the load)."""
    rows = [{"question": "q", "option": {"A": "a", "B": "b", "C": ""}},
            {"question": "q2", "option": {"A": "a", "B": "b"}}, {"question": "q3", "option": {"A": "a"}}]  # fmt: skip
    r = load_items(write(tmp_path, "ex.json", json.dumps(rows)))
    assert [it.question for it in r.items] == ["q2"]
    skipped = [(s.row, s.reason) for s in r.skipped]
    assert skipped == [(0, "option C is empty"), (2, "1 option(s); at least 2 are needed")]


def test_an_unpaired_surrogate_is_a_dataset_error_naming_row_and_field(tmp_path: Path) -> None:
    """JSON can spell a lone surrogate ("\\ud800"); no server can take it as text. It is refused at load (row,
    field), or skipped with --skip-invalid, instead of failing deep inside the run."""
    path = tmp_path / "ds.jsonl"
    good = {"question": "Fine?", "choices": ["a", "b", "c", "d"], "answer": 0}
    lines = [json.dumps(good), '{"question": "Q?", "choices": ["a", "b \\ud800", "c", "d"], "answer": 0}']
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="unpaired surrogate") as exc:
        load_items(path)
    assert (exc.value.row, exc.value.field) == (1, "B")
    res = load_items(path, skip_invalid=True)
    assert len(res.items) == 1 and [s.row for s in res.skipped] == [1]

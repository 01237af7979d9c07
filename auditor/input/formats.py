"""Reading benchmark files: which files a dataset path holds, and the records in each supported format.

Formats (chosen by suffix; `.gz` / `.bz2` are decompressed first and the suffix before them decides):
- `.csv`: MMLU-style without header (question, option..., answer letter), or with a header naming
  `Question`, option columns `A`, `B`, ... and optionally `Answer` (CMMLU, C-Eval; an index or `id` first).
- `.jsonl` / `.json`: objects with `question` (or `query`) and `choices` or `options` (a list), optional
  `answer` (letter or 0-based index), `answer_index` or `gold`; ARC's original layout
  (`question.stem`, `question.choices[{label, text}]`, `answerKey`); HellaSwag's original layout
  (`ctx`, `endings`, `label`, `activity_label`, `ind`); the reference paper's
  `{"question": ..., "option": {"A": ..., ...}}`, whose example file has known gaps (empty or
  duplicated options): such items are skipped and counted, flag or not.
- `.txt`: llama.cpp's HellaSwag format for `perplexity --hellaswag`: 6 lines per item (context, gold
  label 0-3, four endings).

In a directory, files are read recursively in name order; hidden files and documentation (README,
LICENSE, ...) are passed over, like any file of another type.

Row-level problems are yielded as DatasetErrors (the loader skips or raises them); file-level ones raise.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import DatasetError

LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DATA_SUFFIXES = (".csv", ".jsonl", ".json", ".txt")
COMPRESSED = {".gz": gzip.decompress, ".bz2": bz2.decompress}
DOCUMENTATION = ("readme", "license", "licence", "notice", "changelog", "copying", "source")
HELLASWAG_LINES = 6


@dataclass(frozen=True)
class RawItem:
    """A record as read from a file, before validation (auditor/input/items.py validates it)."""

    row: int
    question: Any
    options: list[Any]
    answer: Any
    id: str | None
    subject: str | None
    lenient: bool = False  # from a format whose known gaps are skipped and counted without --skip-invalid


def data_suffix(path: Path) -> str:
    """The suffix that decides the format: `.jsonl` for `x.jsonl`, and for `x.jsonl.gz` too."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def data_stem(path: Path) -> str:
    """The name without its data and compression suffixes: `hellaswag_val` for `hellaswag_val.txt.bz2`."""
    name = path.name
    for suffix in reversed(path.suffixes[-2:]):
        if suffix.lower() in COMPRESSED or suffix.lower() in DATA_SUFFIXES:
            name = name[: -len(suffix)]
    return name


def is_documentation(path: Path) -> bool:
    return path.name.lower().startswith(DOCUMENTATION)


def data_files(path: Path) -> tuple[list[Path], list[Path]]:
    """The data files under `path` (in name order) and the files passed over."""
    if path.is_file():
        if data_suffix(path) not in DATA_SUFFIXES:
            raise DatasetError(
                f"unsupported file type {''.join(path.suffixes)!r}",
                file=str(path),
                fix="use .csv, .jsonl, .json or .txt (HellaSwag's 6-line format), plain or .gz/.bz2",
            )
        return [path], []
    files: list[Path] = []
    ignored: list[Path] = []
    for p in sorted(path.rglob("*"), key=lambda q: q.relative_to(path).as_posix()):
        if not p.is_file() or p.name.startswith("."):
            continue
        is_data = data_suffix(p) in DATA_SUFFIXES and not is_documentation(p)
        if is_data and data_suffix(p) == ".txt":  # a directory's other text files (url lists...) are not items
            is_data = looks_like_hellaswag(p)
        (files if is_data else ignored).append(p)
    return files, ignored


def looks_like_hellaswag(path: Path) -> bool:
    """Whether a .txt file starts like llama.cpp's HellaSwag format (a context, then a label 0-3)."""
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix.lower(), open)
    try:
        with opener(path, "rt", encoding="utf-8-sig") as fh:  # type: ignore[operator]
            head = [fh.readline() for _ in range(HELLASWAG_LINES)]
    except (OSError, EOFError, UnicodeDecodeError, ValueError):
        return False
    return all(head) and head[1].strip() in ("0", "1", "2", "3")


def read_text(file: Path) -> str:
    data = file.read_bytes()
    suffix = file.suffix.lower()
    if suffix in COMPRESSED:
        try:
            data = COMPRESSED[suffix](data)
        except (OSError, EOFError, ValueError) as err:
            raise DatasetError(f"cannot decompress ({err})", file=str(file), fix=f"check the {suffix} file") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DatasetError(
            f"not valid UTF-8 (byte {err.start}, line {line})",
            file=str(file),
            fix="re-save the file as UTF-8",
        ) from None


def read_file(file: Path) -> Iterator[RawItem | DatasetError]:
    """Records of `file`; row-level problems are yielded as errors, file-level ones raised."""
    text = read_text(file)
    if not text.strip():
        raise DatasetError("file is empty", file=str(file), fix="remove it or add items")
    suffix = data_suffix(file)
    if suffix == ".csv":
        yield from _read_csv(text, file)
    elif suffix == ".jsonl":
        yield from _read_jsonl(text, file)
    elif suffix == ".txt":
        yield from _read_hellaswag_text(text, file)
    else:
        yield from _read_json(text, file)


# ---------------------------------------------------------------- HellaSwag, llama.cpp's text format


def _read_hellaswag_text(text: str, file: Path) -> Iterator[RawItem | DatasetError]:
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % HELLASWAG_LINES:
        raise DatasetError(
            f"{len(lines)} lines, not a multiple of {HELLASWAG_LINES}",
            file=str(file),
            fix="a .txt dataset is llama.cpp's HellaSwag format: context, gold label (0-3), four endings",
        )
    for row in range(len(lines) // HELLASWAG_LINES):
        ctx, label, *endings = lines[row * HELLASWAG_LINES : (row + 1) * HELLASWAG_LINES]
        answer: Any = int(label.strip()) if label.strip().isdigit() else label
        activity = ctx.split(": ", 1)[0] if ": " in ctx else ""  # line 1 is "activity label: context"
        subject = activity.strip() if 0 < len(activity) <= 60 else None
        yield RawItem(row, ctx.strip(), [e.strip() for e in endings], answer, None, subject)


# ---------------------------------------------------------------- CSV


def _read_csv(text: str, file: Path) -> Iterator[RawItem | DatasetError]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    # csv's default 131,072-character field limit would turn one over-long option into a parse error
    # for the whole file; lift it (process-wide, so restore it) and let _validate reject the field.
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        rows = list(reader)
    except csv.Error as err:
        raise DatasetError(
            f"malformed CSV near line {reader.line_num}: {err}",
            file=str(file),
            fix="check quoting (a stray or unbalanced '\"')",
        ) from None
    finally:
        csv.field_size_limit(limit)
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DatasetError("no rows (every cell is empty)", file=str(file), fix="remove it or add items")
    header = _csv_header(rows[0])
    if header is None:
        yield from _csv_headerless(rows, file)
    else:
        yield from _csv_with_header(rows[1:], header, file)


@dataclass(frozen=True)
class _Header:
    id_col: int | None
    question_col: int
    option_cols: list[int]
    answer_col: int | None
    width: int


def _csv_header(first: list[str]) -> _Header | None:
    names = [c.strip().lower() for c in first]
    if "question" not in names:
        return None
    q = names.index("question")
    # A leading column named `id` is a per-file id (C-Eval); an unnamed one is a row index (CMMLU).
    id_col = 0 if q == 1 and names[0] == "id" else None
    option_cols = []
    for i, n in enumerate(names):
        if len(n) == 1 and n.upper() in LABELS and i > q:
            option_cols.append(i)
    answer_col = names.index("answer") if "answer" in names else None
    return _Header(id_col, q, option_cols, answer_col, len(names))


def _csv_with_header(rows: list[list[str]], h: _Header, file: Path) -> Iterator[RawItem | DatasetError]:
    if len(h.option_cols) < 2:
        raise DatasetError(
            "header names fewer than 2 option columns",
            file=str(file),
            row=None,
            field="header",
            fix="name option columns A, B, C, ...",
        )
    for i, r in enumerate(rows):
        if len(r) != h.width:
            yield DatasetError(
                f"expected {h.width} columns as in the header, found {len(r)}",
                file=str(file),
                row=i,
                fix="check for missing or extra commas",
            )
            continue
        rid = f"{data_stem(file)}:{r[h.id_col].strip()}" if h.id_col is not None and r[h.id_col].strip() else None
        yield RawItem(
            row=i,
            question=r[h.question_col],
            options=[r[c] for c in h.option_cols],
            answer=r[h.answer_col] if h.answer_col is not None else None,
            id=rid,
            subject=None,
        )


def _csv_headerless(rows: list[list[str]], file: Path) -> Iterator[RawItem | DatasetError]:
    # The layout is what most rows have (ties: the earliest), so that one bad row, even the first,
    # is the one reported rather than every row after it.
    width = Counter(len(r) for r in rows).most_common(1)[0][0]
    if width < 4:
        raise DatasetError(
            f"rows have {width} columns; expected question, at least 2 options and an answer letter",
            file=str(file),
            fix="MMLU-style CSV is: question,A,B,C,D,answer",
        )
    for i, r in enumerate(rows):
        if len(r) != width:
            yield DatasetError(
                f"expected {width} columns like most rows, found {len(r)}",
                file=str(file),
                row=i,
                fix="check for missing or extra commas",
            )
            continue
        yield RawItem(row=i, question=r[0], options=list(r[1:-1]), answer=r[-1], id=None, subject=None)


# ---------------------------------------------------------------- JSON


def _read_jsonl(text: str, file: Path) -> Iterator[RawItem | DatasetError]:
    row = 0
    # Lines end at "\n" only: str.splitlines() would also split at U+0085, U+2028, ... which JSON
    # strings may contain unescaped (MMLU-Pro does).
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            yield DatasetError(
                f"invalid JSON on line {lineno}: {err.msg}", file=str(file), row=row, fix="one JSON object per line"
            )
        else:
            yield _json_record_or_error(obj, row, file)
        row += 1


def _read_json(text: str, file: Path) -> Iterator[RawItem | DatasetError]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}",
            file=str(file),
            fix="fix the JSON, or use .jsonl for one object per line",
        ) from None
    if isinstance(data, dict):
        data = next((v for k, v in data.items() if k in ("items", "data", "questions") and isinstance(v, list)), [data])
    if not isinstance(data, list):
        raise DatasetError("expected a JSON array of items", file=str(file), fix="wrap the items in [...]")
    for row, obj in enumerate(data):
        yield _json_record_or_error(obj, row, file)


def _json_record_or_error(obj: Any, row: int, file: Path) -> RawItem | DatasetError:
    try:
        return _json_record(obj, row, file)
    except DatasetError as err:
        return err


def _json_record(obj: Any, row: int, file: Path) -> RawItem:
    if not isinstance(obj, Mapping):
        raise DatasetError("expected a JSON object", file=str(file), row=row, fix="each item is an object")
    if "ctx" in obj and isinstance(obj.get("endings"), list):  # HellaSwag's original JSONL
        return _hellaswag_record(obj, row)
    rid = obj.get("id", obj.get("question_id"))
    subject = obj.get("subject", obj.get("category"))
    q = obj.get("question", obj.get("query"))
    if isinstance(q, Mapping) and "stem" in q:  # ARC original
        return _arc_record(obj, q, row, file, rid)
    if isinstance(obj.get("option"), Mapping):  # the reference paper's format
        opt = obj["option"]
        labels = sorted(opt)
        answer = obj.get("answer")
        return RawItem(row, q, [opt[k] for k in labels], answer, _str_id(rid), _opt_str(subject), lenient=True)
    options = obj.get("choices", obj.get("options"))
    if options is None:
        raise DatasetError(
            "no options", file=str(file), row=row, field="choices", fix="add a 'choices' or 'options' list"
        )
    if not isinstance(options, list):
        raise DatasetError(
            "options must be a list", file=str(file), row=row, field="choices", fix='use a JSON list: ["...", "..."]'
        )
    answer = obj.get("answer", obj.get("answer_index", obj.get("gold")))
    return RawItem(row, q, list(options), answer, _str_id(rid), _opt_str(subject))


def _arc_record(obj: Mapping[str, Any], q: Mapping[str, Any], row: int, file: Path, rid: Any) -> RawItem:
    choices = q.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, Mapping) for c in choices):
        raise DatasetError(
            "question.choices must be a list of {label, text}",
            file=str(file),
            row=row,
            field="question.choices",
            fix='use ARC\'s layout: [{"label": "A", "text": "..."}, ...]',
        )
    labels = [str(c.get("label", "")) for c in choices]
    key = obj.get("answerKey")
    answer: Any = labels.index(str(key)) if key is not None and str(key) in labels else key
    return RawItem(row, q.get("stem"), [c.get("text") for c in choices], answer, _str_id(rid), None)


def _hellaswag_record(obj: Mapping[str, Any], row: int) -> RawItem:
    """`activity_label: ctx` as the question (as lm-eval builds it), the four endings, `label` the gold."""
    activity = _opt_str(obj.get("activity_label"))
    ctx = obj.get("ctx")
    question = f"{activity}: {ctx}" if activity and isinstance(ctx, str) else ctx
    label = obj.get("label")
    answer = int(label) if isinstance(label, str) and label.isdigit() else label
    return RawItem(row, question, list(obj["endings"]), answer, _str_id(obj.get("ind")), activity)


def _str_id(rid: Any) -> str | None:
    return None if rid is None or rid == "" else str(rid)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

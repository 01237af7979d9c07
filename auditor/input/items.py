"""Benchmark items: the model, the loaders for each supported file format, and validation.

Supported inputs (a file, or a directory searched recursively, files sorted by relative path):
- MMLU-style CSV without header: question, option..., answer letter.
- CSV with header (CMMLU, C-Eval): `Question,A,B,C,D[,Answer]`, optionally after an index or `id` column.
- JSONL / JSON array of objects with `question` (or `query`) and `choices` or `options` (a list),
  optional `answer` (letter or 0-based index), `answer_index` or `gold`.
- ARC's original JSONL: `question.stem`, `question.choices[{label, text}]`, `answerKey`.
- The reference paper's format: `{"question": ..., "option": {"A": ..., "B": ...}}`.

Ids: an `id` / `question_id` field when present (a CSV `id` column is per file, so it becomes
`<file stem>:<id>`), else `<file stem>:<0-based data row>`.

Errors are DatasetErrors naming the file, the row (where there is one), the field and a fix.
Row-level problems (a bad record, a row with the wrong number of columns, an invalid JSONL line)
are skipped and recorded in `LoadResult.skipped` when `skip_invalid=True`; file-level problems
(encoding, unparseable CSV/JSON, an empty file) and duplicate ids always raise.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.errors import DatasetError

LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_FIELD_CHARS = 100_000
DATA_SUFFIXES = (".csv", ".jsonl", ".json")


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    options: tuple[str, ...]
    answer: int | None
    subject: str
    source: str
    row: int


@dataclass(frozen=True)
class Skipped:
    file: str
    row: int | None
    reason: str


@dataclass
class LoadResult:
    items: list[Item]
    files: list[Path]
    skipped: list[Skipped] = field(default_factory=list)
    ignored_files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class _Raw:
    """A record as read from a file, before validation."""

    row: int
    question: Any
    options: list[Any]
    answer: Any
    id: str | None
    subject: str | None


def load_items(path: Path, *, skip_invalid: bool = False, limit: int | None = None) -> LoadResult:
    """Load and validate the items under `path` (a file or a directory): all, or the first `limit`.

    With a limit, reading stops once that many valid items are in hand: problems further on in the
    dataset do not block a spot check of its beginning.
    """
    if not path.exists():
        raise DatasetError("no such file or directory", file=str(path), fix="check the --dataset path")
    files, ignored = _data_files(path)
    if not files:
        raise DatasetError(
            "no .csv, .jsonl or .json files found", file=str(path), fix="point --dataset at benchmark files"
        )
    result = LoadResult(items=[], files=files, ignored_files=ignored)
    seen: dict[str, Item] = {}
    for file in files:
        n_records = 0
        for raw in _read_file(file):
            n_records += 1
            try:
                if isinstance(raw, DatasetError):  # a row-level problem found while reading
                    raise raw
                item = _validate(raw, file)
            except DatasetError as err:
                if not skip_invalid:
                    raise
                result.skipped.append(Skipped(str(file), err.row, err.reason))
                continue
            if item.id in seen:
                first = seen[item.id]
                same_file = first.source == str(file)
                raise DatasetError(
                    f"duplicate id {item.id!r} (first seen in {first.source}, row {first.row})",
                    file=str(file),
                    row=item.row,
                    field="id",
                    fix="give every item a unique id"
                    if same_file
                    else "give every item a unique id, or load one split (directory) at a time",
                )
            seen[item.id] = item
            result.items.append(item)
            if limit is not None and len(result.items) >= limit:
                return result
        if n_records == 0:
            raise DatasetError("no items in file", file=str(file), fix="remove it or add items")
    if not result.items:
        raise DatasetError(
            "no valid items" + (f" ({len(result.skipped)} skipped as invalid)" if result.skipped else ""),
            file=str(path),
            fix="check the file contents",
        )
    return result


def _data_files(path: Path) -> tuple[list[Path], list[Path]]:
    if path.is_file():
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise DatasetError(
                f"unsupported file type {path.suffix!r}",
                file=str(path),
                fix="use .csv, .jsonl or .json",
            )
        return [path], []
    files: list[Path] = []
    ignored: list[Path] = []
    for p in sorted(path.rglob("*"), key=lambda q: q.relative_to(path).as_posix()):
        if not p.is_file() or p.name.startswith("."):
            continue
        (files if p.suffix.lower() in DATA_SUFFIXES else ignored).append(p)
    return files, ignored


def _read_text(file: Path) -> str:
    data = file.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DatasetError(
            f"not valid UTF-8 (byte {err.start}, line {line})",
            file=str(file),
            fix="re-save the file as UTF-8",
        ) from None


def _read_file(file: Path) -> Iterator[_Raw | DatasetError]:
    """Records of `file`; row-level problems are yielded as errors, file-level ones raised."""
    text = _read_text(file)
    if not text.strip():
        raise DatasetError("file is empty", file=str(file), fix="remove it or add items")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        yield from _read_csv(text, file)
    elif suffix == ".jsonl":
        yield from _read_jsonl(text, file)
    else:
        yield from _read_json(text, file)


# ---------------------------------------------------------------- CSV


def _read_csv(text: str, file: Path) -> Iterator[_Raw | DatasetError]:
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


def _csv_with_header(rows: list[list[str]], h: _Header, file: Path) -> Iterator[_Raw | DatasetError]:
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
        rid = f"{file.stem}:{r[h.id_col].strip()}" if h.id_col is not None and r[h.id_col].strip() else None
        yield _Raw(
            row=i,
            question=r[h.question_col],
            options=[r[c] for c in h.option_cols],
            answer=r[h.answer_col] if h.answer_col is not None else None,
            id=rid,
            subject=None,
        )


def _csv_headerless(rows: list[list[str]], file: Path) -> Iterator[_Raw | DatasetError]:
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
        yield _Raw(row=i, question=r[0], options=list(r[1:-1]), answer=r[-1], id=None, subject=None)


# ---------------------------------------------------------------- JSON


def _read_jsonl(text: str, file: Path) -> Iterator[_Raw | DatasetError]:
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


def _read_json(text: str, file: Path) -> Iterator[_Raw | DatasetError]:
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


def _json_record_or_error(obj: Any, row: int, file: Path) -> _Raw | DatasetError:
    try:
        return _json_record(obj, row, file)
    except DatasetError as err:
        return err


def _json_record(obj: Any, row: int, file: Path) -> _Raw:
    if not isinstance(obj, Mapping):
        raise DatasetError("expected a JSON object", file=str(file), row=row, fix="each item is an object")
    rid = obj.get("id", obj.get("question_id"))
    subject = obj.get("subject", obj.get("category"))
    q = obj.get("question", obj.get("query"))
    if isinstance(q, Mapping) and "stem" in q:  # ARC original
        return _arc_record(obj, q, row, file, rid)
    if isinstance(obj.get("option"), Mapping):  # the reference paper's format
        opt = obj["option"]
        labels = sorted(opt)
        answer = obj.get("answer")
        return _Raw(row, q, [opt[k] for k in labels], answer, _str_id(rid), _opt_str(subject))
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
    return _Raw(row, q, list(options), answer, _str_id(rid), _opt_str(subject))


def _arc_record(obj: Mapping[str, Any], q: Mapping[str, Any], row: int, file: Path, rid: Any) -> _Raw:
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
    return _Raw(row, q.get("stem"), [c.get("text") for c in choices], answer, _str_id(rid), None)


def _str_id(rid: Any) -> str | None:
    return None if rid is None or rid == "" else str(rid)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------- validation


def _validate(raw: _Raw, file: Path) -> Item:
    def bad(msg: str, fld: str, fix: str) -> DatasetError:
        return DatasetError(msg, file=str(file), row=raw.row, field=fld, fix=fix)

    if not isinstance(raw.question, str) or not raw.question.strip():
        raise bad("missing question", "question", "every item needs non-empty question text")
    if len(raw.question) > MAX_FIELD_CHARS:
        raise bad(f"question is {len(raw.question):,} characters", "question", f"keep fields under {MAX_FIELD_CHARS:,}")
    options: list[str] = []
    for k, opt in enumerate(raw.options):
        label = LABELS[k] if k < len(LABELS) else str(k)
        if isinstance(opt, int | float) and not isinstance(opt, bool):
            opt = str(opt)
        if opt is not None and not isinstance(opt, str):
            raise bad(f"option {label} is not text ({type(opt).__name__})", label, "make every option a string")
        if opt is None or not opt.strip():
            raise bad(f"option {label} is empty", label, "fill in or remove the empty option")
        if len(opt) > MAX_FIELD_CHARS:
            raise bad(f"option {label} is {len(opt):,} characters", label, f"keep options under {MAX_FIELD_CHARS:,}")
        options.append(opt)
    if len(options) < 2:
        raise bad(f"{len(options)} option(s); at least 2 are needed", "options", "add options")
    if len(options) > len(LABELS):
        raise bad(f"{len(options)} options; at most {len(LABELS)} are supported", "options", "drop options")
    stripped = [o.strip() for o in options]
    dup = next((o for o in stripped if stripped.count(o) > 1), None)
    if dup is not None:
        first = stripped.index(dup)
        second = stripped.index(dup, first + 1)
        raise bad(
            f"options {LABELS[first]} and {LABELS[second]} are identical ({dup[:40]!r})",
            "options",
            "orderings of identical options are indistinguishable; fix the item or pass --skip-invalid",
        )
    answer = _answer_index(raw.answer, len(options), bad)
    item_id = raw.id if raw.id is not None else f"{file.stem}:{raw.row}"
    subject = raw.subject or _subject_from_stem(file.stem)
    return Item(item_id, raw.question, tuple(options), answer, subject, str(file), raw.row)


def _answer_index(answer: Any, n: int, bad: Any) -> int | None:
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return None
    if isinstance(answer, bool):
        raise bad(f"answer {answer!r} is not a letter or index", "answer", "use a letter such as 'B'")
    if isinstance(answer, int):
        if 0 <= answer < n:
            return answer
        raise bad(f"answer index {answer} is out of range for {n} options", "answer", "use 0..n-1")
    text = str(answer).strip().upper()
    if len(text) == 1 and text in LABELS[:n]:
        return LABELS.index(text)
    raise bad(f"unknown answer {str(answer)[:20]!r} for {n} options", "answer", f"use one of {', '.join(LABELS[:n])}")


def _subject_from_stem(stem: str) -> str:
    for suffix in ("_test", "_val", "_dev", "_validation"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem

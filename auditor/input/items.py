"""Benchmark items: the model, loading (files and formats: auditor/input/formats.py), and validation.

Ids: an `id` / `question_id` field when present (a CSV `id` column is per file, so it becomes
`<file stem>:<id>`), else `<file stem>:<0-based data row>`.

Errors are DatasetErrors naming the file, the row (where there is one), the field and a fix.
Row-level problems (a bad record, a row with the wrong number of columns, an invalid JSONL line)
are skipped and recorded in `LoadResult.skipped` when `skip_invalid=True`; file-level problems
(encoding, unparseable CSV/JSON, an empty file) and duplicate ids always raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.errors import DatasetError
from auditor.input.formats import LABELS, RawItem, data_files, data_stem, read_file

__all__ = ["LABELS", "Item", "LoadResult", "Skipped", "load_items"]

MAX_FIELD_CHARS = 100_000


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


def load_items(path: Path, *, skip_invalid: bool = False, limit: int | None = None) -> LoadResult:
    """Load and validate the items under `path` (a file or a directory): all, or the first `limit`.

    With a limit, reading stops once that many valid items are in hand: problems further on in the
    dataset do not block a spot check of its beginning.
    """
    if not path.exists():
        raise DatasetError("no such file or directory", file=str(path), fix="check the --dataset path")
    files, ignored = data_files(path)
    if not files:
        raise DatasetError(
            "no .csv, .jsonl, .json or .txt files found", file=str(path), fix="point --dataset at benchmark files"
        )
    result = LoadResult(items=[], files=files, ignored_files=ignored)
    seen: dict[str, Item] = {}
    for file in files:
        n_records = 0
        for raw in read_file(file):
            n_records += 1
            try:
                if isinstance(raw, DatasetError):  # a row-level problem found while reading
                    raise raw
                item = _validate(raw, file)
            except DatasetError as err:
                if not skip_invalid and not (isinstance(raw, RawItem) and raw.lenient):
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


# ---------------------------------------------------------------- validation


def _validate(raw: RawItem, file: Path) -> Item:
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
    item_id = raw.id if raw.id is not None else f"{data_stem(file)}:{raw.row}"
    subject = raw.subject or _subject_from_stem(data_stem(file))
    texts = [("question", raw.question), *((LABELS[k], o) for k, o in enumerate(options)), ("id", item_id),
             ("subject", subject)]  # fmt: skip
    for fld, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:  # a JSON "\ud800" escape without its pair: not text a server can take
            raise bad(
                f"{fld} holds an unpaired surrogate ({text[err.start]!r} at character {err.start})",
                fld,
                "fix the \\u escape in the file (a surrogate needs its pair) or pass --skip-invalid",
            ) from None
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

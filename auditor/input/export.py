"""`--export-clean DIR`: the audited items that were not flagged, ready for an evaluation harness.

DIR holds
- `dataset/`: the kept records in the input's own format, copied from the source files record by record
  (CSV rows with their header, JSONL lines verbatim, JSON objects re-serialised inside the same wrapper,
  llama.cpp HellaSwag text 6 lines per item; a .gz or .bz2 file compressed again), under the same
  relative paths, so `--dataset DIR/dataset` or a harness reads them as it read the input.
  A source file with no record kept is left out (an empty benchmark file is an error for loaders).
  Items whose id is their row number (`<file stem>:<row>`) get new row numbers, hence new ids.
- `clean.jsonl`: the same items as JSON lines with their original ids (`id`, `question`, `choices`,
  `answer` as a letter or null, `subject`), loadable by auditor and by `datasets.load_dataset("json")`.
- `manifest.json`: what was kept and what was removed and why: flagged (scenario, p-value, z,
  order-sensitive and why), failed or not scored (with the reason), and the items loaded but not audited
  (outside --items, set aside or unused by --sequential; --limit stops reading, so the rest are not counted).

Kept = judged by the audit and not flagged. Both files are read back with our own loader before DIR is
replaced, and must give exactly the kept items (same text, options, answer and subject, in order; same
ids where the id is not a row number), else nothing is written. DIR is replaced atomically; it must be new,
empty, or an earlier export.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import DatasetError, UsageError
from auditor.input.formats import HELLASWAG_LINES, data_stem, data_suffix, read_text
from auditor.input.items import LABELS, Item, LoadResult, load_items

COMPRESSED_WRITE: dict[str, Callable[[bytes], bytes]] = {
    ".gz": lambda b: gzip.compress(b, mtime=0),
    ".bz2": bz2.compress,
}

KIND = "auditor clean-subset export"
MANIFEST = "manifest.json"


def check_export_target(target: Path, dataset: Path) -> None:
    """Refuse, before any request, a target that is not new, empty or an earlier export, or lies in the input."""
    if dataset.exists() and dataset.is_dir() and target.resolve().is_relative_to(dataset.resolve()):
        raise UsageError(f"--export-clean {target}: inside the --dataset directory (later runs would load it)")
    if not target.exists():
        return
    if not target.is_dir():
        raise UsageError(f"--export-clean {target}: exists and is not a directory")
    if any(target.iterdir()) and _manifest_kind(target / MANIFEST) != KIND:
        raise UsageError(f"--export-clean {target}: not empty and not an earlier export; choose a new directory")


def _manifest_kind(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


@dataclass(frozen=True)
class _Source:
    """A source file's records (CSV rows, JSONL lines, JSON objects) by the loader's row numbers."""

    kind: str  # csv | jsonl | json | txt (llama.cpp's HellaSwag: 6 lines per item)
    records: list[Any]
    header: list[str] | None = None  # CSV header row
    newline: str = "\n"
    wrapper: tuple[dict[str, Any], str] | None = None  # JSON: the object holding the item list, and its key
    single: bool = False  # JSON: the file is one item object

    def render(self, rows: Sequence[int]) -> str:
        kept = [self.records[r] for r in rows]
        if self.kind == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator=self.newline)
            writer.writerows([self.header, *kept] if self.header is not None else kept)
            return buf.getvalue()
        if self.kind in ("jsonl", "txt"):
            return "".join(line + "\n" for line in kept)
        if self.single:
            value: Any = kept[0]
        elif self.wrapper is not None:
            value = {**self.wrapper[0], self.wrapper[1]: kept}
        else:
            value = kept
        return json.dumps(value, ensure_ascii=False, indent=1) + "\n"


def _read_source(file: Path) -> _Source:
    """The records as auditor/input/formats.py numbers them (blank CSV rows and JSONL lines do not count)."""
    text = read_text(file)
    suffix = data_suffix(file)
    if suffix == ".csv":
        limit = csv.field_size_limit()
        csv.field_size_limit(max(limit, len(text) + 1))
        try:
            rows = [r for r in csv.reader(io.StringIO(text, newline=""), strict=True) if any(c.strip() for c in r)]
        finally:
            csv.field_size_limit(limit)
        newline = "\r\n" if "\r\n" in text else "\n"
        if rows and "question" in [c.strip().lower() for c in rows[0]]:
            return _Source("csv", rows[1:], header=rows[0], newline=newline)
        return _Source("csv", rows, newline=newline)
    if suffix == ".jsonl":
        return _Source("jsonl", [line for line in text.split("\n") if line.strip()])
    if suffix == ".txt":
        lines = text.split("\n")
        while lines and not lines[-1].strip():
            lines.pop()
        n = HELLASWAG_LINES
        return _Source("txt", ["\n".join(lines[k : k + n]) for k in range(0, len(lines), n)])
    data = json.loads(text)
    if isinstance(data, dict):
        key = next((k for k, v in data.items() if k in ("items", "data", "questions") and isinstance(v, list)), None)
        if key is None:
            return _Source("json", [data], single=True)
        return _Source("json", list(data[key]), wrapper=(data, key))
    return _Source("json", list(data))


def _relative(file: Path, dataset: Path) -> Path:
    return file.relative_to(dataset) if dataset.is_dir() and file.is_relative_to(dataset) else Path(file.name)


def _canonical(item: Item) -> dict[str, Any]:
    answer = None if item.answer is None else LABELS[item.answer]
    return {"id": item.id, "question": item.question, "choices": list(item.options), "answer": answer,
            "subject": item.subject}  # fmt: skip


def manifest(load: LoadResult, report: Mapping[str, Any]) -> tuple[list[Item], dict[str, Any]]:
    """The kept items (judged, not flagged; in load order) and the manifest saying what went and why."""
    judged = {it["id"]: it for it in report["items"]}
    failed = {f["id"]: f.get("reason", "") for f in report.get("failures", [])}
    not_scored = {n["id"]: n.get("reason", "") for n in (report.get("not_scored") or {}).get("items", [])}
    kept: list[Item] = []
    removed: list[dict[str, Any]] = []
    outside: list[str] = []
    for item in load.items:
        entry = judged.get(item.id)
        if entry is not None and not entry.get("flagged"):
            kept.append(item)
        elif entry is not None:
            removed.append({"id": item.id, "subject": item.subject, "reason": "flagged",
                            "scenario": entry.get("scenario"), "p_value": entry.get("p_value"),
                            "z_published": entry.get("z_published"), "outlier_score": entry.get("outlier_score"),
                            "order_sensitive": entry.get("order_sensitive"),
                            "order_reasons": entry.get("order_reasons", [])})  # fmt: skip
        elif item.id in failed:
            removed.append({"id": item.id, "subject": item.subject, "reason": "failed", "detail": failed[item.id]})
        elif item.id in not_scored:
            removed.append({"id": item.id, "subject": item.subject, "reason": "not_scored",
                            "detail": not_scored[item.id]})  # fmt: skip
        else:
            outside.append(item.id)
    s, prov = report["summary"], report["provenance"]
    counts: dict[str, int] = {}
    for r in removed:
        counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    data = {
        "kind": KIND,
        "version": 1,
        "audit": {
            "model": prov["endpoint"]["model"],
            "dataset": prov["dataset"]["path"],
            "dataset_sha256": prov["dataset"]["sha256"],
            "method": s.get("method"),
            "verdict": s.get("verdict"),
            "partial": bool(s.get("partial")),
        },
        "files": {"dataset": "dataset", "jsonl": "clean.jsonl"},
        "kept": len(kept),
        "kept_order_sensitive": sum(bool(judged[it.id].get("order_sensitive")) for it in kept),
        "removed_counts": counts,
        "removed": removed,
        "not_audited": {
            "count": len(outside),
            "ids": outside,
            "why": "loaded but not audited: outside --items, set aside or unused by --sequential (--limit stops"
            " reading at N items: the rest are not loaded, not counted)",
        },
        "skipped_invalid": len(load.skipped),
    }
    return kept, data


def export_clean(target: Path, load: LoadResult, report: Mapping[str, Any], *, dataset: Path) -> list[Path]:
    """Write the clean subset of a finished audit into `target` (see the module docstring); returns its files."""
    kept, data = manifest(load, report)
    rows: dict[str, list[int]] = {}
    for item in kept:
        rows.setdefault(item.source, []).append(item.row)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        for file in load.files:
            if str(file) not in rows:
                continue
            out = tmp / "dataset" / _relative(file, dataset)
            out.parent.mkdir(parents=True, exist_ok=True)
            text = _read_source(file).render(rows[str(file)])
            compress = COMPRESSED_WRITE.get(file.suffix.lower())  # a .gz / .bz2 input is written back compressed
            out.write_bytes(compress(text.encode()) if compress is not None else text.encode())
        jsonl = "".join(json.dumps(_canonical(it), ensure_ascii=False) + "\n" for it in kept)
        (tmp / "clean.jsonl").write_text(jsonl, encoding="utf-8")
        (tmp / MANIFEST).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        _check_round_trip(tmp, kept)
        _replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [target / MANIFEST]


def _check_round_trip(tmp: Path, kept: list[Item]) -> None:
    """Both exports, read back with our loader, must give exactly the kept items."""
    if not kept:
        return
    for name, got, same_ids in (
        ("dataset/", load_items(tmp / "dataset").items, False),
        ("clean.jsonl", load_items(tmp / "clean.jsonl").items, True),
    ):
        if len(got) != len(kept) or not all(_same(a, b, same_ids) for a, b in zip(got, kept, strict=False)):
            raise DatasetError(f"{name} does not read back as the kept items", file=str(tmp),
                               fix="please report this as a bug, with the input file")  # fmt: skip


def _same(got: Item, kept: Item, same_ids: bool) -> bool:
    """Same item; ids may differ only where the original id was its row number (`<file stem>:<row>`)."""
    renumbered = not same_ids and kept.id == f"{data_stem(Path(kept.source))}:{kept.row}"
    return (got.question, got.options, got.answer, got.subject) == (
        kept.question,
        kept.options,
        kept.answer,
        kept.subject,
    ) and (renumbered or got.id == kept.id)


def _replace(tmp: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
        os.replace(target, old / "export")
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

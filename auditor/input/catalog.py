"""Benchmarks by name: the samples shipped inside the package (`--dataset mmlu`), and what a selection is.

Each bundled benchmark is a folder under `auditor/input/data/<name>/` holding `items.jsonl` (the sample,
one item per line in the JSON layout every loader reads: id, subject, question, choices, answer),
`meta.json` (where it comes from and how it was drawn), `LICENSE` and `SOURCE.md`. They are written by
`scripts/bundle_datasets.py` from the staged benchmark files, seeded and stratified (never the first
rows), and that script checks that a rebuild gives the same bytes.

`resolve` turns a `--dataset` value into what to load: a path that exists is a path, as always; else a
bundled name. `describe` says in one line exactly which items an audit used, for the report header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import DatasetError

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Bundled:
    name: str
    title: str  # e.g. "MMLU"
    description: str  # e.g. "285 of 14,042 MMLU test items, 5 per subject, seed 0"
    items: int
    population: int
    licence: str
    source: str
    path: Path  # items.jsonl
    meta: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.path.parent


def bundled_names() -> list[str]:
    return sorted(p.name for p in DATA_DIR.iterdir() if (p / "meta.json").is_file()) if DATA_DIR.is_dir() else []


def bundled(name: str) -> Bundled:
    folder = DATA_DIR / name
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        raise DatasetError(
            f"no bundled benchmark named {name!r}",
            file=name,
            fix=f"use one of {', '.join(bundled_names())} (auditor datasets), or a file or directory path",
        )
    meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
    return Bundled(
        name=name,
        title=meta["title"],
        description=meta["description"],
        items=meta["items"],
        population=meta["population"],
        licence=meta["licence"],
        source=meta["source"],
        path=folder / "items.jsonl",
        meta=meta,
    )


def resolve(dataset: Path) -> tuple[Path, Bundled | None]:
    """The path to load for a `--dataset` value, and the bundled benchmark it names (None for a path)."""
    if dataset.exists():
        return dataset, None
    if len(dataset.parts) == 1 and dataset.name in bundled_names():
        b = bundled(dataset.name)
        return b.path, b
    if len(dataset.parts) == 1 and not dataset.suffix:
        raise DatasetError(
            "no such file or directory, and no bundled benchmark of that name",
            file=str(dataset),
            fix=f"give a path, or one of {', '.join(bundled_names())} (auditor datasets)",
        )
    return dataset, None  # the loader reports the missing path


@dataclass(frozen=True)
class Selection:
    """How the audited items were picked out of what was loaded, for `describe`."""

    n_items: int  # items selected (before --sequential set any aside)
    n_loaded: int
    n_skipped: int
    files: list[Path]  # every data file found
    files_read: list[str]  # the files the selected items come from, in load order
    limit: int | None
    sample: int | None
    seed: int
    n_subjects: int


def describe(dataset: Path, b: Bundled | None, s: Selection) -> str:
    """One line saying exactly what was audited, e.g. '285 of 14,042 MMLU test items, 5 per subject, seed 0'."""
    if b is not None:
        if s.sample is None:
            return f"{b.description} (bundled `{b.name}`)"
        return (
            f"{s.n_items} of the bundled `{b.name}` sample, stratified by subject (seed {s.seed}); that sample is"
            f" {b.description}"
        )
    files = f"{len(s.files)} file{'s' if len(s.files) != 1 else ''}"
    skipped = f", {s.n_skipped:,} skipped as invalid" if s.n_skipped else ""
    if s.limit is not None:
        names = ", ".join(Path(f).name for f in s.files_read[:3]) + (" ..." if len(s.files_read) > 3 else "")
        return (
            f"the first {s.n_items:,} items of `{dataset}`, read from {len(s.files_read)} of its {files} ({names}):"
            f" a prefix, not a sample (--items N draws a stratified one)"
        )
    if s.sample is not None and s.n_items < s.n_loaded:
        subjects = f"{s.n_subjects} subject{'s' if s.n_subjects != 1 else ''}"
        return (
            f"{s.n_items:,} of the {s.n_loaded:,} valid items of `{dataset}` ({files}{skipped}), stratified by"
            f" subject ({subjects}), seed {s.seed}"
        )
    return f"all {s.n_items:,} valid items of `{dataset}` ({files}{skipped})"

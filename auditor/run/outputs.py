"""Where a run writes, checked before anything is paid for: --out can take the reports, and it does not
hold the report of another audit (which `--force` may replace; the same audit re-run may).

Two steps: `check_out` before any request (the directory, and a report whose endpoint or dataset differ),
`check_model` once the probe has named the served model and before any scoring request (a report of
another model of the same server). The cache is checked by `ScoreCache.check_writable`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from auditor.errors import UsageError
from auditor.jsonio import loads

REPORT = "report.json"


def check_out(out: Path, *, base_url: str, dataset: str, force: bool) -> dict[str, Any] | None:
    """Refuse an --out that cannot take the reports, or that holds another audit's; returns the provenance of
    the report there (only that is kept: a 14k-item report.json parses to ~70 MB of objects)."""
    _writable(out)
    existing = _existing(out, force)
    if existing is not None and not force:
        theirs = ((existing.get("endpoint") or {}).get("base_url"), (existing.get("dataset") or {}).get("path"))
        if theirs != (base_url, dataset):
            raise UsageError(f"--out {out} holds the report of another audit ({_who(existing)}); give another --out,"
                             " or --force to replace it")  # fmt: skip
    return existing


def check_model(out: Path, existing: dict[str, Any] | None, model: str, *, force: bool) -> None:
    """The probe named the served model: refuse replacing a report of another model of the same server
    (`existing`: the provenance `check_out` returned)."""
    if existing is None or force:
        return
    theirs = (existing.get("endpoint") or {}).get("model")
    if theirs != model:
        raise UsageError(f"--out {out} holds the report of another audit ({_who(existing)}; this run audits"
                         f" {model!r}); give another --out, or --force to replace it")  # fmt: skip


def _writable(out: Path) -> None:
    """A directory we can create files in, now (a real write), without creating it if it is not there yet."""
    probe_dir = out
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory")
    if not probe_dir.is_dir():
        raise UsageError(f"--out {out} cannot be created: {probe_dir} is a file")
    try:
        if probe_dir == out:
            fd, tmp = tempfile.mkstemp(dir=out, prefix=".auditor-write-check.")
            os.close(fd)
            os.unlink(tmp)
        else:
            os.rmdir(tempfile.mkdtemp(dir=probe_dir, prefix=".auditor-write-check."))
    except OSError as err:
        raise UsageError(f"--out {out} is not writable ({err.strerror}); give another --out") from None


def _existing(out: Path, force: bool) -> dict[str, Any] | None:
    path = out / REPORT
    if not path.exists():
        return None
    try:
        data = loads(path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        data = None
    prov = data.get("provenance") if isinstance(data, dict) else None
    if not isinstance(prov, dict):
        if force:
            return None
        raise UsageError(f"--out {out} holds a {REPORT} that is not an auditor report; give another --out, or"
                         " --force to replace it")  # fmt: skip
    return prov


def _who(prov: dict[str, Any]) -> str:
    ep, ds = prov.get("endpoint") or {}, prov.get("dataset") or {}
    return f"model {ep.get('model')!r} at {ep.get('base_url')}, dataset {ds.get('path')}"

"""The results database: every finished run's report, queryable (docs/results-db.md).

One SQLite file (default `results.sqlite` beside the cache, `--results-db` to move it) with tables `runs`
(one row per audit: the summary, provenance, and the whole report.json), `items` (one row per item: rank,
p-value, flags, harness answers), `orderings` (one row per scored ordering) and `accuracy` (one row per
harness method and population). Datasette, pandas (`pd.read_sql`) or sqlite-utils open it as it is.

A run's id is a hash of its provenance without the scoring times: re-running the same audit (resumed, or
from the cache) replaces its rows instead of adding new ones. Rows are built from report.json alone, so a
report written earlier can be recorded too. Several runs may write at once: WAL, a busy timeout, schema
migrations under a file lock, and each run's rows replaced in one IMMEDIATE transaction.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlite_utils

from auditor.errors import CacheError, UsageError
from auditor.jsonio import dump_bytes
from auditor.report.compare import Run
from auditor.report.results_migrations import migrations
from auditor.scoring.cache import _init_lock, canonical_json


def run_id(report: Mapping[str, Any]) -> str:
    """What identifies an audit: its provenance (endpoint, weights, dataset bytes, design, method, seed...)
    without the times its prompts were scored."""
    prov = {k: v for k, v in report["provenance"].items() if k != "time"}
    return hashlib.sha256(canonical_json(prov).encode()).hexdigest()[:16]


@contextmanager
def open_results(path: Path) -> Iterator[sqlite_utils.Database]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _init_lock(path):
            conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 30000")
            db = sqlite_utils.Database(conn)
            db.enable_wal()
            conn.execute("PRAGMA foreign_keys = ON")
            migrations.apply(db)
    except (sqlite3.Error, OSError) as err:
        raise CacheError(f"cannot open the results database {path}: {err}") from err
    try:
        yield db
    finally:
        conn.close()


def _first(d: Mapping[str, Any], *names: str) -> Any:
    """A field under its current name or its schema-1 name (report.json before schema_version 2)."""
    return next((d[n] for n in names if n in d), None)


def _run_row(rid: str, report: Mapping[str, Any], out_dir: str | None) -> dict[str, Any]:
    s, prov = report["summary"], report["provenance"]
    ep, ds, lf = prov["endpoint"], prov["dataset"], s["leaked_fraction"]
    spend, when = report.get("spend") or {}, prov.get("time") or {}
    return {
        "run_id": rid, "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"), "out_dir": out_dir,
        "model": ep["model"], "model_root": ep.get("model_root"), "base_url": ep["base_url"],
        "provider": ep.get("provider"), "server": ep.get("server"), "server_version": ep.get("server_version"),
        "dataset": ds["path"], "dataset_sha256": ds["sha256"], "template": (prov.get("template") or {}).get("name"),
        "orderings": prov.get("orderings"), "max_orderings": prov.get("max_orderings"), "seed": prov.get("seed"),
        "method": s.get("method"), "null": (s.get("null") or {}).get("kind"), "sequential": int(bool(prov.get(
            "sequential"))), "partial": int(bool(s.get("partial"))), "verdict": s["verdict"],
        "verdict_text": s.get("verdict_text"), "p_verdict": _first(s, "p_verdict", "p_value"),
        "leaked_fraction": lf["estimate"], "leaked_fraction_low": lf["low"], "leaked_fraction_high": lf["high"],
        "n_items": s["n_items"], "n_failed": s.get("n_failed"), "n_top1": _first(s, "n_top1", "n_leaked"),
        "chance_rate": s.get("chance_rate"), "n_flagged": s.get("n_flagged"),
        "n_order_sensitive": s.get("n_order_sensitive"), "prompts": spend.get("prompts_used"),
        "prompt_tokens": spend.get("prompt_tokens_used"), "tool_version": (prov.get("tool") or {}).get("version"),
        "first_scored": when.get("first_scored"), "last_scored": when.get("last_scored"),
    }  # fmt: skip


def _item_rows(rid: str, report: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One row per item, made as SQLite takes them."""
    answers = {a["id"]: a for a in (report.get("accuracy") or {}).get("items", [])}
    for it in report["items"]:
        top1 = _first(it, "top1", "leaked")
        yield {
            "run_id": rid, "item_id": it["id"], "subject": it.get("subject"), "status": "scored",
            "n_orderings": it["n_orderings"], "rank": it["rank"], "rank_random": it.get("rank_random"),
            "p_value": it.get("p_value"), "top1": None if top1 is None else int(top1), "margin": it.get("margin"),
            "z_published": it.get("z_published"), "outlier_score": it.get("outlier_score"),
            "best_ordering": json.dumps(it.get("best_ordering")), "min_k": it.get("min_k"),
            "flagged": int(bool(it.get("flagged"))), "scenario": it.get("scenario"),
            "order_sensitive": int(bool(it.get("order_sensitive"))),
            "order_reasons": json.dumps(it.get("order_reasons", [])), "excluded": int(bool(it.get("excluded"))),
            **_answers(answers.get(it["id"])),
        }  # fmt: skip
    for f in report.get("failures", []):
        yield {"run_id": rid, "item_id": f["id"], "subject": f.get("subject"), "status": "failed",
               "reason": f.get("reason"), **_answers(answers.get(f["id"]))}  # fmt: skip


def _ordering_rows(rid: str, report: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
    """One row per ordering of every scored item, made as SQLite takes them (a 14k-item MMLU audit has 300k)."""
    for it in report["items"]:
        for k, (perm, score) in enumerate(zip(it["orderings"], it["scores"], strict=True)):
            yield rid, it["id"], k, _perm_json(tuple(perm)), int(k == 0), score


@lru_cache(maxsize=1024)
def _perm_json(perm: tuple[int, ...]) -> str:
    """An ordering as the database stores it (`json.dumps` of its list); items share a few dozen orderings."""
    return json.dumps(list(perm))


def _answers(a: Mapping[str, Any] | None) -> dict[str, Any]:
    return {} if a is None else {k: a.get(k) for k in ("answer", "letter", "cloze", "cloze_norm")}


def _insert(conn: sqlite3.Connection, db: sqlite_utils.Database, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Rows as dicts, in the table's own column order (absent keys are NULL), each made as SQLite takes it."""
    cols = [c.name for c in db[table].columns]
    names = ", ".join(f"[{c}]" for c in cols)
    conn.executemany(f"insert into {table} ({names}) values ({', '.join('?' * len(cols))})",
                     ([row.get(c) for c in cols] for row in rows))  # fmt: skip


def _insert_run(conn: sqlite3.Connection, db: sqlite_utils.Database, row: Mapping[str, Any], report: bytes) -> None:
    """The run's row with its report as text; the report goes in as the UTF-8 bytes of its JSON, cast to text by
    SQLite (a 14k-item report is 23 MB: no Python str of it, nor that str's UTF-8 copy, is ever made)."""
    cols = [c.name for c in db["runs"].columns if c.name != "report_json"]
    names = ", ".join(f"[{c}]" for c in cols)
    conn.execute(f"insert or replace into runs ({names}, [report_json]) values ({', '.join('?' * len(cols))},"
                 " cast(? as text))", [*(row.get(c) for c in cols), report])  # fmt: skip


def _accuracy_rows(rid: str, report: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    methods = (report.get("accuracy") or {}).get("methods", {})
    return [
        (rid, m, pop, r["n"], r["correct"], r["accuracy"], r["low"], r["high"])
        for m, sec in methods.items()
        for pop in ("overall", "flagged", "unflagged")
        for r in [sec[pop]]
    ]


def record_run(path: Path, report: Mapping[str, Any], out_dir: Path | str | None) -> str:
    """Record a finished run (its report.json data, written to `out_dir` if anywhere); returns its run id.
    Replaces an earlier record of the same audit."""
    rid = run_id(report)
    run = _run_row(rid, report, None if out_dir is None else str(out_dir))
    with open_results(path) as db:
        conn = db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("PRAGMA defer_foreign_keys = ON")  # the run's row goes in last: its report is made then
            for table in ("orderings", "items", "accuracy"):
                conn.execute(f"delete from {table} where run_id = ?", [rid])
            _insert(conn, db, "items", _item_rows(rid, report))
            conn.executemany("insert into orderings values (?, ?, ?, ?, ?, ?)", _ordering_rows(rid, report))
            conn.executemany("insert into accuracy values (?, ?, ?, ?, ?, ?, ?, ?)", _accuracy_rows(rid, report))
            _insert_run(conn, db, run, dump_bytes(report))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return rid


@dataclass(frozen=True)
class StoredRun:
    run_id: str
    out_dir: str | None  # None: the report was not written to files (Python API without `out`)
    data: dict[str, Any]  # the run's report.json


def stored_runs(path: Path, run_ids: Sequence[str] = ()) -> list[StoredRun]:
    """The reports recorded in a results database (all, or those ids or id prefixes), oldest first."""
    if not path.is_file():
        raise UsageError(f"--results-db {path}: no such results database")
    with open_results(path) as db:
        rows = db.execute("select run_id, out_dir, report_json from runs order by recorded_at, run_id").fetchall()
    wanted = [r for r in rows if not run_ids or any(str(r[0]).startswith(p) for p in run_ids)]
    missing = [p for p in run_ids if not any(str(r[0]).startswith(p) for r in rows)]
    if missing:
        raise UsageError(f"--results-db {path}: no run id starts with {', '.join(missing)}")
    return [StoredRun(str(r[0]), None if r[1] is None else str(r[1]), json.loads(r[2])) for r in wanted]


def compare_runs(path: Path, run_ids: Sequence[str] = ()) -> list[Run]:
    """The recorded runs as `auditor compare` reads them (report.json data; `run` is the run's directory)."""
    return [Run(Path(s.out_dir or f"{path}#{s.run_id}") / "report.json", s.data) for s in stored_runs(path, run_ids)]

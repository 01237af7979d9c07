"""The SQLite cache of scored prompts (sqlite-utils, WAL, schema by migrations).

Key: `v1:` + sha256 of canonical JSON over an explicit allow-list: endpoint base URL, model as
served, prompt text, and the provider's scoring parameters (with `tls_verified: false` for scores
fetched with --insecure, so a verified run never reuses them). Value: tokens, offsets, token ids
(JSON), log-probabilities (float64 blob, NaN for the first token's null), and a digest over both so
that a damaged row is detected, discarded and fetched again, never used; so is a row that is not a
score (a logprob not finite or above 0, which versions before the check cached). A failure is never a score:
prompts that failed for good are rows of their own table (`failures`), so a re-run can retry them
(`--retry-failed`). The schema is in auditor/scoring/migrations.py.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from auditor.errors import CacheError
from auditor.scoring.migrations import migrations
from providers.base import LogprobRecord

KEY_VERSION = "v1"
DEFAULT_PATH = Path("cache") / "auditor.sqlite"

def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(*, endpoint: str, model: str, prompt: str, params: dict[str, Any]) -> str:
    payload = canonical_json({"endpoint": endpoint, "model": model, "prompt": prompt, "params": params})
    return f"{KEY_VERSION}:{hashlib.sha256(payload.encode()).hexdigest()}"


def _encode(record: LogprobRecord) -> tuple[str, bytes, str]:
    meta = canonical_json(
        {
            "tokens": list(record.tokens),
            "offsets": list(record.offsets),
            "token_ids": None if record.token_ids is None else list(record.token_ids),
            "prompt_tokens": record.prompt_tokens,
        }
    )
    values = np.array([np.nan if v is None else v for v in record.logprobs], dtype="<f8").tobytes()
    return meta, values, _digest(meta, values)


def _digest(meta: str, values: bytes) -> str:
    return hashlib.sha256(meta.encode() + b"\x00" + values).hexdigest()


def _decode(meta: str, values: bytes) -> LogprobRecord:
    data = json.loads(meta)
    arr = np.frombuffer(values, dtype="<f8")
    data["logprobs"] = [None if np.isnan(v) else float(v) for v in arr]
    return LogprobRecord.from_json(data)


@contextmanager
def _init_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `<cache>.lock` while the journal mode is set and migrations run."""
    with open(f"{path}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    discarded: int = 0  # damaged rows found and dropped


class ScoreCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.stats = CacheStats()
        self._db: sqlite_utils.Database | None = None

    def open(self) -> ScoreCache:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _init_lock(self.path):  # two processes creating one cache must not race
                conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
                conn.execute("PRAGMA busy_timeout = 30000")
                db = sqlite_utils.Database(conn)
                db.enable_wal()
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA secure_delete = ON")  # a replaced row (an old probe's server strings) is zeroed
                migrations.apply(db)
        except (sqlite3.Error, OSError) as err:
            raise CacheError(f"cannot open cache {self.path}: {err}") from err
        self._db = db
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.conn.close()
            self._db = None

    def __enter__(self) -> ScoreCache:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite_utils.Database:
        if self._db is None:
            raise CacheError("cache is not open")
        return self._db

    def check_writable(self) -> None:
        """A real write, rolled back: a read-only cache fails here, before anything is paid for."""
        conn = self.db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("insert or replace into failures (key, endpoint, model, reason, failed_at)"
                             " values ('', '', '', 'write check', '')")  # fmt: skip
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as err:
            raise CacheError(f"cache {self.path} is not writable ({err}); give another --cache") from None

    def get(self, key: str) -> LogprobRecord | None:
        row = self.db.execute("select record_json, logprobs, digest from scores where key = ?", [key]).fetchone()
        if row is None:
            self.stats.misses += 1
            return None
        meta, values, digest = row
        if not isinstance(meta, str) or not isinstance(values, bytes) or _digest(meta, values) != digest:
            self._discard(key)
            return None
        try:
            record = _decode(meta, values)
        except (ValueError, KeyError, TypeError):
            self._discard(key)
            return None
        if record.problem() is not None:  # written before logprobs were checked (+/-inf, > 0): fetch again
            self._discard(key)
            return None
        self.stats.hits += 1
        return record

    def _discard(self, key: str) -> None:
        with self.db.conn:
            self.db.execute("delete from scores where key = ?", [key])
        self.stats.discarded += 1
        self.stats.misses += 1

    def put(self, key: str, *, endpoint: str, model: str, record: LogprobRecord) -> None:
        problem = record.problem()
        if problem is not None:  # providers refuse these before they become records: a bug if it happens
            raise ValueError(f"refusing to cache a record that is not a score: {problem}")
        meta, values, digest = _encode(record)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.db.conn:
            self.db.execute(
                "insert or ignore into scores (key, endpoint, model, record_json, logprobs, digest, created_at)"
                " values (?, ?, ?, ?, ?, ?, ?)",
                [key, endpoint, model, meta, values, digest, now],
            )
        self.stats.writes += 1

    def created_at(self, keys: list[str]) -> tuple[str | None, str | None]:
        """Earliest and latest time the given keys were scored (deterministic across re-runs)."""
        lo: str | None = None
        hi: str | None = None
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            a, b = self.db.execute(
                f"select min(created_at), max(created_at) from scores where key in ({marks})", chunk
            ).fetchone()
            if a is not None:
                lo = a if lo is None or a < lo else lo
                hi = b if hi is None or b > hi else hi
        return lo, hi


def get_probe(cache: ScoreCache, *, endpoint: str, model: str, provider: str) -> dict[str, Any] | None:
    row = cache.db.execute(
        "select result_json from probes where endpoint = ? and model = ? and provider = ?",
        [endpoint, model, provider],
    ).fetchone()
    if row is None:
        return None
    try:
        value = json.loads(row[0])
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def put_probe(cache: ScoreCache, *, endpoint: str, model: str, provider: str, result: dict[str, Any]) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with cache.db.conn:
        cache.db.execute(
            "insert or replace into probes (endpoint, model, provider, result_json, probed_at) values (?, ?, ?, ?, ?)",
            [endpoint, model, provider, canonical_json(result), now],
        )


def get_failure(cache: ScoreCache, key: str) -> str | None:
    """The reason a prompt failed for good last time, if it did (and has not been scored since)."""
    row = cache.db.execute("select reason from failures where key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def put_failure(cache: ScoreCache, key: str, *, endpoint: str, model: str, reason: str) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with cache.db.conn:
        cache.db.execute(
            "insert or replace into failures (key, endpoint, model, reason, failed_at) values (?, ?, ?, ?, ?)",
            [key, endpoint, model, reason, now],
        )


def clear_failure(cache: ScoreCache, key: str) -> None:
    with cache.db.conn:
        cache.db.execute("delete from failures where key = ?", [key])

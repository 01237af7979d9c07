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
import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import sqlite_utils

from auditor.errors import CacheError
from auditor.jsonio import loads
from auditor.scoring.migrations import migrations
from providers.base import LOGPROB_ROUNDING, LogprobRecord

KEY_VERSION = "v1"
_CHUNK = 500  # keys per `in (...)` query (SQLite's default limit on host parameters is 999 in old builds)
DEFAULT_PATH = Path("cache") / "auditor.sqlite"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(*, endpoint: str, model: str, prompt: str, params: dict[str, Any]) -> str:
    payload = canonical_json({"endpoint": endpoint, "model": model, "prompt": prompt, "params": params})
    return f"{KEY_VERSION}:{hashlib.sha256(payload.encode()).hexdigest()}"


def key_maker(*, endpoint: str, model: str, params: dict[str, Any]) -> Callable[[str], str]:
    """`cache_key` for many prompts of one endpoint: the canonical JSON's fixed part is built once
    ("prompt" sorts last, so each key only appends the prompt's JSON string). Same keys as `cache_key`."""
    head = (canonical_json({"endpoint": endpoint, "model": model, "params": params})[:-1] + ',"prompt":').encode()
    prefix = f"{KEY_VERSION}:"

    def key(prompt: str) -> str:
        try:  # orjson writes a str exactly as json.dumps(ensure_ascii=False) does (every code point checked)
            text = orjson.dumps(prompt)
        except orjson.JSONEncodeError:  # a lone surrogate: fail as canonical_json's encoding does
            text = json.dumps(prompt, ensure_ascii=False).encode()
        return prefix + hashlib.sha256(head + text + b"}").hexdigest()

    return key


def _encode(record: LogprobRecord) -> tuple[str, bytes, str]:
    # keys in sorted order already: the same text canonical_json gives, without sorting each time
    meta = orjson.dumps(
        {
            "offsets": record.offsets,
            "prompt_tokens": record.prompt_tokens,
            "token_ids": record.token_ids,
            "tokens": record.tokens,
        }
    ).decode()
    values = np.array([_NAN if v is None else v for v in record.logprobs], dtype="<f8").tobytes()
    return meta, values, _digest(meta, values)


_NAN = float("nan")


def _are_logprobs(first: float | None, rest: Sequence[float]) -> bool:
    """Floats that can be a prompt's log-probabilities (C-level passes): finite, none above `LOGPROB_ROUNDING`;
    only the first may be null."""
    return (
        all(map(math.isfinite, rest))
        and (not rest or max(rest) <= LOGPROB_ROUNDING)
        and (first is None or (math.isfinite(first) and first <= LOGPROB_ROUNDING))
    )


def _problem(record: LogprobRecord) -> str | None:
    """`record.problem()`, answered by C-level passes when the record is a plain score (the hot path)."""
    lp, n = record.logprobs, len(record.tokens)
    rest = lp[1:]
    if (
        n
        and len(lp) == n == len(record.offsets)
        and (record.token_ids is None or len(record.token_ids) == n)
        and type(lp[0]) in (float, type(None))
        and set(map(type, rest)) <= {float}
        and _are_logprobs(lp[0], rest)  # type: ignore[arg-type]  # floats only, checked above
    ):
        return None
    return record.problem()


def _digest(meta: str, values: bytes) -> str:
    return hashlib.sha256(meta.encode() + b"\x00" + values).hexdigest()


def _decode(meta: str, values: bytes) -> LogprobRecord:
    """The record a row holds; ValueError when it is damaged or not a score (`LogprobRecord.problem`'s rules,
    checked here on the decoded floats: rows written before logprobs were checked can hold +/-inf or > 0)."""
    data = loads(meta)
    floats = np.frombuffer(values, dtype="<f8").tolist()
    ids = data["token_ids"]
    tokens, offsets = data["tokens"], data["offsets"]
    if type(tokens) is not list or type(offsets) is not list or not set(map(type, offsets)) <= {int}:
        raise ValueError("damaged record")
    if ids is not None and (type(ids) is not list or not set(map(type, ids)) <= {int}):
        raise ValueError("damaged record")
    n = len(tokens)
    if not n or len(floats) != n or len(offsets) != n or (ids is not None and len(ids) != n):
        raise ValueError("not a score: lengths differ")
    first, rest = (None if floats[0] != floats[0] else floats[0]), floats[1:]  # NaN stands for null: first only
    if not _are_logprobs(first, rest):
        raise ValueError("not a score")
    return LogprobRecord(tuple(tokens), (first, *rest), tuple(offsets),
                         None if ids is None else tuple(ids), data.get("prompt_tokens"))  # fmt: skip


@contextmanager
def _init_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `<cache>.lock` while the journal mode is set and migrations run."""
    with open(f"{path}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One transaction around several statements, committed on exit (rolled back on an error).

    The connection is in autocommit mode (isolation_level=None), where `with conn:` alone begins nothing:
    each row of an executemany would be a transaction of its own, the pages it touched written to the WAL
    once per row instead of once per call. A crash (kill -9) after the commit keeps every row; one before
    it keeps none of them."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        yield conn


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
        self._times: dict[str, str] = {}  # scoring time of records read or written, until taken

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
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, LogprobRecord]:
        """The cached records among `keys` (one query); damaged rows are dropped and count as misses."""
        found: dict[str, LogprobRecord] = {}
        damaged: list[str] = []
        for start in range(0, len(keys), _CHUNK):
            part = keys[start : start + _CHUNK]
            rows = self.db.conn.execute(
                f"select key, record_json, logprobs, digest, created_at from scores where key in ({_marks(len(part))})",
                part,
            ).fetchall()
            for key, meta, values, digest, created in rows:
                try:
                    if not isinstance(meta, str) or not isinstance(values, bytes) or _digest(meta, values) != digest:
                        raise ValueError("digest mismatch")
                    found[key] = _decode(meta, values)
                except (ValueError, KeyError, TypeError):
                    damaged.append(key)
                    continue
                if isinstance(created, str):
                    self._times[key] = created
        if damaged:
            with _transaction(self.db.conn) as conn:
                conn.executemany("delete from scores where key = ?", [[k] for k in damaged])
            self.stats.discarded += len(damaged)
        self.stats.hits += len(found)
        self.stats.misses += len(keys) - len(found)
        return found

    def put(self, key: str, *, endpoint: str, model: str, record: LogprobRecord) -> None:
        self.put_many([(key, record)], endpoint=endpoint, model=model)

    def put_many(self, rows: Sequence[tuple[str, LogprobRecord]], *, endpoint: str, model: str) -> None:
        """Write scored prompts in one transaction (`insert or ignore`: a key already there is kept), committed
        before this returns (WAL, synchronous=NORMAL: it survives a crash of this process, not a power loss)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        values = []
        for key, record in rows:
            problem = _problem(record)
            if problem is not None:  # providers refuse these before they become records: a bug if it happens
                raise ValueError(f"refusing to cache a record that is not a score: {problem}")
            meta, blob, digest = _encode(record)
            values.append((key, endpoint, model, meta, blob, digest, now))
        with _transaction(self.db.conn) as conn:
            conn.executemany(
                "insert or ignore into scores (key, endpoint, model, record_json, logprobs, digest, created_at)"
                " values (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        self.stats.writes += len(rows)
        for key, _ in rows:
            self._times.setdefault(key, now)

    def take_times(self, keys: Sequence[str]) -> tuple[str | None, str | None]:
        """Earliest and latest scoring time of the records among `keys` read or written since (then forgotten)."""
        times = [t for t in (self._times.pop(k, None) for k in keys) if t is not None]
        return (min(times), max(times)) if times else (None, None)


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


def _marks(n: int) -> str:
    return ",".join("?" * n)


def get_failures(cache: ScoreCache, keys: Sequence[str]) -> dict[str, str]:
    """The reasons prompts among `keys` failed for good last time (and were not scored since)."""
    out: dict[str, str] = {}
    for start in range(0, len(keys), _CHUNK):
        part = keys[start : start + _CHUNK]
        for key, reason in cache.db.conn.execute(
            f"select key, reason from failures where key in ({_marks(len(part))})", part
        ).fetchall():
            out[key] = str(reason)
    return out


def clear_failures(cache: ScoreCache, keys: Sequence[str]) -> None:
    with _transaction(cache.db.conn) as conn:
        conn.executemany("delete from failures where key = ?", [[k] for k in keys])


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

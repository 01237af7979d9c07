"""Caches that travel: a shard's starting cache cut from the main one, and shards merged back into it.

A grid cell run elsewhere (a Ray task on another machine) scores into a cache of its own. It starts with
what the main cache already holds for its endpoint (`seed_shard`), so nothing paid for is paid again, and
its cache is merged back when it ends (`merge_into`). Merging is idempotent and never conflicts: a score
is keyed by everything that determines it (auditor/endpoint/config.py `prompt_keys`), so two caches that
hold one key hold the same answer; the first one kept wins. Probes: the shard's (newer) replaces the main
cache's. Failures: kept only for keys that have no score.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from auditor.errors import CacheError
from auditor.scoring.cache import ScoreCache

TABLES = ("scores", "probes", "failures")


def seed_shard(main: Path, shard: Path, endpoints: Sequence[str]) -> int:
    """Create the cache `shard` with the main cache's rows for `endpoints` (scores, probes, failures);
    returns the scores copied. A main cache that does not exist yet gives an empty shard."""
    with ScoreCache(shard):
        pass  # the schema, by the cache's own migrations
    if not main.exists() or not endpoints:
        return 0
    marks = ",".join("?" * len(endpoints))
    with _connect(shard) as db:
        db.execute("ATTACH DATABASE ? AS main_cache", (str(main),))
        copied = 0
        for table in TABLES:
            cur = db.execute(f"INSERT OR IGNORE INTO {table} SELECT * FROM main_cache.{table}"
                             f" WHERE endpoint IN ({marks})", tuple(endpoints))  # fmt: skip
            copied += cur.rowcount if table == "scores" else 0
        db.commit()
        db.execute("DETACH DATABASE main_cache")
    checkpoint(shard)
    return copied


def merge_into(main: Path, shards: Sequence[Path]) -> dict[str, int]:
    """Add every shard's rows to the main cache; returns the new rows per table (0s on a second merge)."""
    with ScoreCache(main):
        pass
    added = dict.fromkeys(TABLES, 0)
    with _connect(main) as db:
        for shard in shards:
            db.execute("ATTACH DATABASE ? AS shard", (str(shard),))
            try:
                before = _counts(db)
                db.execute("INSERT OR IGNORE INTO scores SELECT * FROM shard.scores")
                db.execute("INSERT OR REPLACE INTO probes SELECT * FROM shard.probes")
                db.execute("INSERT OR IGNORE INTO failures SELECT * FROM shard.failures")
                db.execute("DELETE FROM failures WHERE key IN (SELECT key FROM scores)")  # a score wins
                db.commit()
                for table, n in _counts(db).items():
                    added[table] += max(0, n - before[table]) if table != "probes" else 0
            finally:
                db.execute("DETACH DATABASE shard")
    return added


def checkpoint(path: Path) -> None:
    """Fold the write-ahead log into the database file, so that the file alone holds every row (to be sent)."""
    with _connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}


def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, timeout=30)
    except sqlite3.Error as err:
        raise CacheError(f"cannot open the cache {path}: {err}") from None
    db.execute("PRAGMA journal_mode=WAL")
    return db

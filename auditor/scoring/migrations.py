"""The cache's schema, as sqlite-utils migrations applied in order when a cache is opened.

A new column or table is a new migration appended here, never an edit of an applied one (each is
recorded by name in the cache's `_sqlite_migrations` table; tests/unit/test_cache.py checks the
exact columns).
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("auditor.cache")  # the name is stored in existing caches: never change it


@migrations()
def m001_scores(db: sqlite_utils.Database) -> None:
    db["scores"].create(  # type: ignore[union-attr]
        {
            "key": str,
            "endpoint": str,
            "model": str,
            "record_json": str,
            "logprobs": bytes,
            "digest": str,
            "created_at": str,
        },
        pk="key",
    )


@migrations()
def m002_probes(db: sqlite_utils.Database) -> None:
    db["probes"].create(  # type: ignore[union-attr]
        {"endpoint": str, "model": str, "provider": str, "result_json": str, "probed_at": str},
        pk=("endpoint", "model", "provider"),
    )


@migrations()
def m003_failures(db: sqlite_utils.Database) -> None:
    db["failures"].create(  # type: ignore[union-attr]
        {"key": str, "endpoint": str, "model": str, "reason": str, "failed_at": str},
        pk="key",
    )

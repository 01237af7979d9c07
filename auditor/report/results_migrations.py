"""The results database's schema (docs/results-db.md), as sqlite-utils migrations applied in order.

A new column or table is a new migration appended here, never an edit of an applied one
(tests/unit/test_results_db.py checks the exact columns).
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("auditor.results")  # stored in existing databases: never change it


@migrations()
def m001_runs_items_orderings(db: sqlite_utils.Database) -> None:
    db["runs"].create(  # type: ignore[union-attr]
        {
            "run_id": str,
            "recorded_at": str,
            "out_dir": str,
            "model": str,
            "model_root": str,
            "base_url": str,
            "provider": str,
            "server": str,
            "server_version": str,
            "dataset": str,
            "dataset_sha256": str,
            "template": str,
            "orderings": str,
            "max_orderings": int,
            "seed": int,
            "method": str,
            "null": str,
            "sequential": int,
            "partial": int,
            "verdict": str,
            "verdict_text": str,
            "p_verdict": float,
            "leaked_fraction": float,
            "leaked_fraction_low": float,
            "leaked_fraction_high": float,
            "n_items": int,
            "n_failed": int,
            "n_top1": int,
            "chance_rate": float,
            "n_flagged": int,
            "n_order_sensitive": int,
            "prompts": int,
            "prompt_tokens": int,
            "tool_version": str,
            "first_scored": str,
            "last_scored": str,
            "report_json": str,
        },
        pk="run_id",
    )
    db["items"].create(  # type: ignore[union-attr]
        {
            "run_id": str,
            "item_id": str,
            "subject": str,
            "status": str,  # scored | failed
            "reason": str,
            "n_orderings": int,
            "rank": int,
            "rank_random": int,
            "p_value": float,
            "top1": int,
            "margin": float,
            "z_published": float,
            "outlier_score": float,
            "best_ordering": str,
            "min_k": float,
            "flagged": int,
            "scenario": str,
            "order_sensitive": int,
            "order_reasons": str,
            "excluded": int,
            "answer": int,
            "letter": int,
            "cloze": int,
            "cloze_norm": int,
        },
        pk=("run_id", "item_id"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db["orderings"].create(  # type: ignore[union-attr]
        {"run_id": str, "item_id": str, "k": int, "ordering": str, "published": int, "score": float},
        pk=("run_id", "item_id", "k"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db["accuracy"].create(  # type: ignore[union-attr]
        {
            "run_id": str,
            "method": str,
            "population": str,
            "n": int,
            "correct": int,
            "accuracy": float,
            "low": float,
            "high": float,
        },
        pk=("run_id", "method", "population"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )

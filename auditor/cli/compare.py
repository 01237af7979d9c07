"""`auditor compare`: the leaderboard of finished runs (see auditor/report/compare.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from auditor.api import compare
from auditor.report.compare import to_markdown, write_board

EPILOG = """examples:
  auditor compare runs/llama runs/qwen --out board
  auditor compare 'runs/*' --out board           # a quoted glob: every run directory under runs/
  auditor compare runs/*/report.json --out board  # or let the shell expand it
  auditor compare --results-db cache/results.sqlite --out board   # every run recorded there

Writes compare.md, compare.json, compare.csv and compare.html (a heatmap of the leaked fraction per
model and benchmark, one self-contained file) into --out and prints the Markdown leaderboard.
p-values are Holm-adjusted across every run given; runs of one dataset are ranked together only when
they were audited the same way (items, template, ordering design, null, test), else the table says why.
Exit code 2 when a path is not a run directory or a report is unreadable."""


def compare_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "compare",
        help="a leaderboard of finished runs: models x benchmarks (Markdown, JSON, CSV, HTML)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs", nargs="*", metavar="RUN", help="a run directory (with report.json), a report.json, or a glob"
    )
    p.add_argument("--out", type=Path, required=True, help="directory for compare.md/.json/.csv/.html")
    p.add_argument(
        "--results-db",
        type=Path,
        metavar="PATH",
        help="also the runs recorded in this results database (docs/results-db.md)",
    )
    p.add_argument(
        "--run-id",
        action="append",
        default=[],
        metavar="PREFIX",
        help="with --results-db: only these runs (repeatable)",
    )


async def compare_command(args: argparse.Namespace) -> int:
    board = compare(args.runs, results_db=args.results_db, run_ids=args.run_id)
    paths = write_board(board, args.out)
    print(to_markdown(board), end="")
    print("written: " + ", ".join(str(p) for p in paths))
    return 0

"""`auditor grid PLAN`: every model x benchmark of a plan file, here or on a Ray cluster, then one leaderboard."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

from auditor.report.compare import to_markdown
from auditor.run.grid import grid_code, leaderboard, run_here, run_on_ray
from auditor.run.gridplan import load_plan
from auditor.scoring.cache import DEFAULT_PATH

EPILOG = """examples:
  auditor grid grid.toml --out board                    # the cells one after the other, here
  auditor grid grid.toml --out board --ray              # each cell a Ray task (a local Ray, or RAY_ADDRESS)
  RAY_ADDRESS=ray://head:10001 auditor grid grid.toml --out board --ray     # an existing cluster

The plan file (TOML; docs/grid.md): [[models]] (name, base_url or a list of replica URLs, model, provider,
api_key_env), [[benchmarks]] (name, dataset), [run] (`auditor run`'s options for every cell, underscores
for dashes) and [budget] (max_tokens, max_requests, max_cost for the whole grid, split over the cells in
proportion to their prompts). Each cell's report goes to OUT/<model>/<benchmark>/, the leaderboard to
OUT/compare.{md,json,csv,html}. Exit code: 0 when every cell completed, else the most severe cell's."""


def grid_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "grid",
        help="every model x benchmark of a plan file, here or as Ray tasks, and their leaderboard",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("plan", type=Path, help="the plan file (TOML)")
    p.add_argument("--out", type=Path, required=True, help="folder for the cells' reports and the leaderboard")
    p.add_argument("--cache", type=Path, default=DEFAULT_PATH, help=f"SQLite cache (default {DEFAULT_PATH})")
    p.add_argument("--ray", action="store_true", help="run each cell as a Ray task (RAY_ADDRESS: an existing cluster)")
    p.add_argument("--fail-on-leak", action="store_true", help="a cell whose verdict is leakage counts as exit 1")
    p.add_argument("--json", action="store_true", help="print the cells' results as JSON on stdout")


async def grid_command(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    on_ray = args.ray or bool(os.environ.get("RAY_ADDRESS"))
    run = run_on_ray if on_ray else run_here
    results = await run(plan, args.out, args.cache, fail_on_leak=args.fail_on_leak)
    board, paths = leaderboard(args.out, results)
    if args.json:
        print(json.dumps({"cells": [asdict(r) for r in results], "leaderboard": [str(p) for p in paths],
                          "exit_code": grid_code(results)}, indent=1))  # fmt: skip
        return grid_code(results)
    print("| model | benchmark | exit | verdict | tokens | requests | from cache | seconds | where |")
    print("|---|---|---:|---|---:|---:|---:|---:|---|")
    for r in results:
        where = f"ray node {r.ray_node[:8]}, pid {r.pid}" if r.ray_node else f"here, pid {r.pid}"
        verdict = r.verdict or f"error: {r.error}"
        print(f"| {r.model} | {r.benchmark} | {r.exit_code} | {verdict} | {r.tokens} | {r.requests} | {r.cached}"
              f" | {r.seconds:.1f} | {where} |")  # fmt: skip
    if board is not None:
        print("\n" + to_markdown(board), end="")
        print("written: " + ", ".join(str(p) for p in paths))
    return grid_code(results)

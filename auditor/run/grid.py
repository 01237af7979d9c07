"""A grid of audits, models x benchmarks (auditor/run/gridplan.py), here or as Ray tasks, then one leaderboard.

- Here (default): the cells run one after the other in this process, on the main cache.
- `--ray` (or RAY_ADDRESS set): each cell is one Ray task (`ray.init()` joins RAY_ADDRESS, or starts a local
  Ray). Ray places, runs and (on a lost node) reports them; we schedule nothing across machines. A task
  receives its cell and a starting cache cut from the main one for its endpoint (auditor/scoring/merge.py),
  so nothing already paid for is paid again; it scores into that shard on its own machine and sends back
  its report files and its shard, which are written under OUT/<model>/<benchmark>/ and merged into the
  main cache (idempotent, no conflict: a key determines its answer).
- Budgets: the grid's total is split into per-cell caps before anything runs (gridplan.split_budget), so
  the cells together never spend more than it, in whatever order and wherever they run.
- The leaderboard: OUT/compare.{md,json,csv,html} from the cells' reports (auditor/report/compare.py).

Exit code: 0 when every cell completed; else the first of 70, 2, 3, 4, 130, 5, 6, 1 that some cell had
(internal, usage, cache, endpoint, interrupted, partial, undecided, leakage with --fail-on-leak).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from auditor.api import audit_settings, endpoint
from auditor.endpoint.config import endpoint_secrets
from auditor.endpoint.secrets import redact
from auditor.errors import AuditorError, UsageError
from auditor.report.compare import compare, find_runs, load_run, write_board
from auditor.run.config import AuditConfig
from auditor.run.gridplan import BenchmarkSpec, GridPlan, ModelSpec, split_budget
from auditor.run.plan import plan_audit
from auditor.scoring.merge import checkpoint, merge_into, seed_shard
from providers.local import LOCAL_ENDPOINT

SEVERITY = (70, 2, 3, 4, 130, 5, 6, 1)
REPORT_FILES = ("report.json", "report.md", "report.html")


@dataclass
class CellResult:
    model: str
    benchmark: str
    exit_code: int
    verdict: str | None = None
    error: str | None = None
    tokens: int = 0  # tokens charged to the cell's budget (or the report's count without one)
    requests: int = 0  # scoring requests sent
    cached: int = 0  # prompts answered from the cache
    seconds: float = 0.0
    host: str = ""
    pid: int = 0
    ray_node: str | None = None  # the Ray node that ran it (None: this process)


def grid_code(results: list[CellResult]) -> int:
    codes = {r.exit_code for r in results}
    return next((c for c in SEVERITY if c in codes), 0)


def cell_config(plan: GridPlan, m: ModelSpec, b: BenchmarkSpec, out: Path, cache: Path,
                caps: dict[str, float | int] | None = None) -> AuditConfig:  # fmt: skip
    """The cell's AuditConfig: the plan's shared [run] options, its budget cap, its own report folder."""
    local = (plan.path.parent / b.dataset).expanduser()
    dataset = str(local) if local.exists() else b.dataset  # a path beside the plan, else a bundled name or path
    ep = endpoint(list(m.base_urls) or None, model=m.model, provider=m.provider, api_key_env=m.api_key_env,
                  timeout=m.timeout)  # fmt: skip
    return audit_settings(ep, dataset, out=out / m.name / b.name, cache=cache, **{**plan.run, **(caps or {})})


def caps_for(plan: GridPlan, out: Path, cache: Path) -> list[dict[str, float | int]]:
    """Per-cell caps from the plan's budget, in proportion to each cell's planned prompts (nothing is sent)."""
    if not plan.budget:
        return [{} for _ in plan.cells()]
    prompts = [plan_audit(cell_config(plan, m, b, out, cache)).n_prompts for m, b in plan.cells()]
    return split_budget(plan.budget, prompts)


async def run_cell(cfg: AuditConfig, model: str, benchmark: str, *, fail_on_leak: bool) -> CellResult:
    """One audit; its failures become the cell's exit code and message, never an exception."""
    from auditor.cli.codes import outcome_code  # the exit codes `auditor run` uses
    from auditor.run.audit import run_audit

    t0 = time.monotonic()
    host, pid = socket.gethostname(), os.getpid()
    try:
        outcome = await run_audit(cfg)
    except AuditorError as err:
        why = redact(str(err), endpoint_secrets(cfg.endpoint))[:500]  # a key never reaches the table or JSON
        return CellResult(model, benchmark, err.exit_code, error=why, seconds=time.monotonic() - t0,
                          host=host, pid=pid)  # fmt: skip
    summary = outcome.report.summary
    tokens = outcome.budget.tokens_used() if outcome.budget is not None else outcome.report.spend.prompt_tokens_used
    return CellResult(model, benchmark, int(outcome_code(summary, fail_on_leak=fail_on_leak)),
                      verdict=summary.verdict.value, tokens=tokens, requests=outcome.stats.requests,
                      cached=outcome.stats.cached, seconds=time.monotonic() - t0, host=host, pid=pid)  # fmt: skip


async def run_here(plan: GridPlan, out: Path, cache: Path, *, fail_on_leak: bool) -> list[CellResult]:
    caps = caps_for(plan, out, cache)
    results = []
    for (m, b), cap in zip(plan.cells(), caps, strict=True):
        results.append(await run_cell(cell_config(plan, m, b, out, cache, cap), m.name, b.name,
                                      fail_on_leak=fail_on_leak))  # fmt: skip
    return results


def _ray_cell(cell: dict[str, Any], seed: bytes) -> tuple[dict[str, Any], bytes, dict[str, bytes]]:
    """A Ray task: the cell in a temporary folder of the worker, from its starting cache; returns the cell's
    result, its shard cache and its report files."""
    import ray

    with tempfile.TemporaryDirectory(prefix="auditor-cell-") as tmp:
        work = Path(tmp)
        shard, out = work / "shard.sqlite", work / "out"
        shard.write_bytes(seed)
        plan = cell["plan"]
        cfg = cell_config(plan, cell["model"], cell["benchmark"], out, shard, cell["caps"])
        result = asyncio.run(run_cell(cfg, cell["model"].name, cell["benchmark"].name,
                                      fail_on_leak=cell["fail_on_leak"]))  # fmt: skip
        result.ray_node = ray.get_runtime_context().get_node_id()
        run_dir = out / cell["model"].name / cell["benchmark"].name
        files = {n: (run_dir / n).read_bytes() for n in REPORT_FILES if (run_dir / n).exists()}
        checkpoint(shard)
        return asdict(result), shard.read_bytes(), files


async def run_on_ray(plan: GridPlan, out: Path, cache: Path, *, fail_on_leak: bool) -> list[CellResult]:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install -e '.[ray]' (or pip install 'auditor[ray]')") from None
    caps = caps_for(plan, out, cache)
    address = os.environ.get("RAY_ADDRESS") or None
    if address:  # an existing cluster
        ray.init(address=address, log_to_driver=False)
    else:  # a local one for this grid
        ray.init(log_to_driver=False, include_dashboard=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_cell)
        shards = out / "shards"
        shards.mkdir(parents=True, exist_ok=True)
        refs = []
        for (m, b), cap in zip(plan.cells(), caps, strict=True):
            with tempfile.TemporaryDirectory(prefix="auditor-seed-") as tmp:
                start = Path(tmp) / "start.sqlite"
                seed_shard(cache, start, [u.rstrip("/") for u in m.base_urls] or [LOCAL_ENDPOINT])
                seed = start.read_bytes()
            cell = {"plan": plan, "model": m, "benchmark": b, "caps": cap, "fail_on_leak": fail_on_leak}
            refs.append(task.remote(cell, seed))
        answers = await asyncio.to_thread(ray.get, refs)  # the one call every Ray mode has (Ray Client included)
    finally:
        ray.shutdown()
    results, paths = [], []
    for (m, b), (result, data, files) in zip(plan.cells(), answers, strict=True):
        run_dir = out / m.name / b.name
        run_dir.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (run_dir / name).write_bytes(content)
        shard = shards / f"{m.name}--{b.name}.sqlite"
        shard.write_bytes(data)
        paths.append(shard)
        results.append(CellResult(**result))
    merge_into(cache, paths)
    return results


def leaderboard(out: Path, results: list[CellResult]) -> tuple[dict[str, Any] | None, list[Path]]:
    """The leaderboard of the cells that wrote a report, and the compare.{md,json,csv,html} written in `out`."""
    runs = [str(out / r.model / r.benchmark) for r in results if (out / r.model / r.benchmark / "report.json").exists()]
    if not runs:
        return None, []
    board = compare([load_run(p) for p in find_runs(runs)])
    return board, write_board(board, out)

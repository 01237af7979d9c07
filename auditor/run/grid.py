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
from auditor.jsonio import loads
from auditor.report.build import _atomic_write
from auditor.report.compare import compare, find_runs, load_run, write_board
from auditor.run.codes import ExitCode, outcome_code
from auditor.run.collector import audit_collector
from auditor.run.config import AuditConfig
from auditor.run.gridplan import BenchmarkSpec, GridPlan, ModelSpec, split_budget
from auditor.run.outputs import check_model, check_out
from auditor.run.plan import plan_audit
from auditor.scoring.merge import checkpoint, merge_into, seed_shard
from providers.local import LOCAL_ENDPOINT

SEVERITY = (ExitCode.INTERNAL, ExitCode.USAGE, ExitCode.CACHE, ExitCode.ENDPOINT, ExitCode.INTERRUPTED,
            ExitCode.PARTIAL, ExitCode.UNDECIDED, ExitCode.LEAKAGE)  # fmt: skip
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
        with audit_collector():  # as `auditor run` has it (auditor/run/collector.py)
            result = asyncio.run(run_cell(cfg, cell["model"].name, cell["benchmark"].name,
                                          fail_on_leak=cell["fail_on_leak"]))  # fmt: skip
        result.ray_node = ray.get_runtime_context().get_node_id()
        run_dir = out / cell["model"].name / cell["benchmark"].name
        files = {n: (run_dir / n).read_bytes() for n in REPORT_FILES if (run_dir / n).exists()}
        checkpoint(shard)
        return asdict(result), shard.read_bytes(), files


def claim_folder(cfg: AuditConfig) -> dict[str, Any] | None:
    """What `auditor run` checks before paying, for a cell whose audit runs elsewhere (a Ray task writes into a
    folder of its own): the cell's folder can take its report and holds no other audit's. Returns the
    provenance of the report already there (None: none); UsageError otherwise."""
    assert cfg.out is not None
    return check_out(cfg.out, base_url=cfg.endpoint.base_url, dataset=str(cfg.dataset), force=cfg.force)


def place_reports(run_dir: Path, files: dict[str, bytes], existing: dict[str, Any] | None) -> None:
    """A Ray cell's report files written into its folder, each replaced atomically; UsageError (nothing
    written) when the folder's report is of another model than the one the cell's probe named."""
    new = loads(files["report.json"]) if "report.json" in files else None
    model = (((new or {}).get("provenance") or {}).get("endpoint") or {}).get("model")
    if model is not None:
        check_model(run_dir, existing, str(model), force=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        _atomic_write(run_dir / name, content.decode("utf-8"))  # the reports' writer: UTF-8 text, fsynced


async def run_on_ray(plan: GridPlan, out: Path, cache: Path, *, fail_on_leak: bool) -> list[CellResult]:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install -e '.[ray]' (or pip install 'auditor[ray]')") from None
    caps = caps_for(plan, out, cache)
    cells = list(plan.cells())
    claims: list[dict[str, Any] | None] = []
    refused: dict[int, CellResult] = {}
    for k, ((m, b), cap) in enumerate(zip(cells, caps, strict=True)):
        try:
            claims.append(claim_folder(cell_config(plan, m, b, out, cache, cap)))
        except UsageError as err:  # another audit's report there: the cell is not run, as `auditor run` would not
            claims.append(None)
            refused[k] = CellResult(m.name, b.name, err.exit_code, error=str(err)[:500], host=socket.gethostname(),
                                    pid=os.getpid())  # fmt: skip
    address = os.environ.get("RAY_ADDRESS") or None
    if address:  # an existing cluster
        ray.init(address=address, log_to_driver=False)
    else:  # a local one for this grid
        ray.init(log_to_driver=False, include_dashboard=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_cell)
        shards = out / "shards"
        shards.mkdir(parents=True, exist_ok=True)
        refs = {}
        for k, ((m, b), cap) in enumerate(zip(cells, caps, strict=True)):
            if k in refused:
                continue
            with tempfile.TemporaryDirectory(prefix="auditor-seed-") as tmp:
                start = Path(tmp) / "start.sqlite"
                seed_shard(cache, start, [u.rstrip("/") for u in m.base_urls] or [LOCAL_ENDPOINT])
                seed = start.read_bytes()
            cell = {"plan": plan, "model": m, "benchmark": b, "caps": cap, "fail_on_leak": fail_on_leak}
            refs[k] = task.remote(cell, seed)
        answers = dict(zip(refs, await asyncio.to_thread(ray.get, list(refs.values())), strict=True))  # Ray Client too
    finally:
        ray.shutdown()
    results, paths = [], []
    for k, (m, b) in enumerate(cells):
        if k in refused:
            results.append(refused[k])
            continue
        result, data, files = answers[k]
        shard = shards / f"{m.name}--{b.name}.sqlite"
        shard.write_bytes(data)
        paths.append(shard)  # what the cell paid for is kept, whatever happens to its report
        cell_result = CellResult(**result)
        try:
            place_reports(out / m.name / b.name, files, claims[k])
        except UsageError as err:
            cell_result.exit_code, cell_result.verdict, cell_result.error = err.exit_code, None, str(err)[:500]
        results.append(cell_result)
    merge_into(cache, paths)
    return results


def leaderboard(out: Path, results: list[CellResult]) -> tuple[dict[str, Any] | None, list[Path]]:
    """The leaderboard of the cells that wrote a report, and the compare.{md,json,csv,html} written in `out`."""
    runs = [str(out / r.model / r.benchmark) for r in results if (out / r.model / r.benchmark / "report.json").exists()]
    if not runs:
        return None, []
    board = compare([load_run(p) for p in find_runs(runs)])
    return board, write_board(board, out)

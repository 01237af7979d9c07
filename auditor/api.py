"""The Python API: `audit` and `compare`, the same engine as the CLI (README, "Python API").

`audit` is a coroutine, like the rest of the core: await it from async code, or run it with
`asyncio.run(audit(...))` at the top of a script. Its options are the CLI's flags with dashes as
underscores (`--max-orderings 24` is `max_orderings=24`, `--items 50` is `items=50`), checked the same way
(auditor/run/config.py): a bad value raises UsageError. It returns the report (what report.json holds);
the run is recorded in the results database, and report files are written when `out` is given.

`compare` builds the leaderboard of finished runs (auditor/report/compare.py) from run directories or
report.json files and/or a results database; with `out`, it writes compare.md/.json/.csv/.html there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

import httpx

from auditor.analysis.assess import Method
from auditor.endpoint.config import EndpointConfig
from auditor.endpoint.prices import price_for
from auditor.endpoint.probe import AUTO, HOSTED
from auditor.errors import UsageError
from auditor.report.compare import compare as leaderboard
from auditor.report.compare import find_runs, load_run, write_board
from auditor.report.model import Report
from auditor.report.results_db import compare_runs
from auditor.run.audit import run_audit
from auditor.run.config import AuditConfig, parse_method
from auditor.scoring.budget import Limits
from auditor.scoring.cache import DEFAULT_PATH
from providers.local import LOCAL_ENDPOINT


class AuditOptions(TypedDict, total=False):
    """`audit`'s options: the CLI's flags of the same names (tests/unit/test_api.py keeps them in step)."""

    limit: int | None
    items: int | None  # --items N: a seeded, subject-stratified sample of N
    template: str
    max_orderings: int
    orderings: str
    seed: int
    batch_size: int
    concurrency: int
    skip_invalid: bool
    attempts: int
    retry_failed: bool
    method: str | Method
    control_run: str | Path | Sequence[str | Path] | None  # clean reference run(s) on the same items
    exclude_order_sensitive: bool
    alpha: float
    sequential: bool
    tolerance: float
    keep_order_sensitive: bool
    accuracy: bool
    export_clean: str | Path | None
    results_db: str | Path | None
    force: bool  # replace another audit's report in `out`
    max_tokens: int | None
    max_requests: int | None
    max_cost: float | None
    max_time: float | None
    price_per_mtok: float | None


LIMITS = {"max_tokens": "tokens", "max_requests": "requests", "max_cost": "cost", "max_time": "seconds",
          "price_per_mtok": "price_per_mtok"}  # fmt: skip
PATHS = ("export_clean", "results_db")
LOCAL = "local"


def endpoint(
    base_url: str | Sequence[str] | None,
    *,
    model: str = "",
    provider: str = AUTO,
    api_key_env: str | None = None,
    api_key_file: str | Path | None = None,
    timeout: float = 120.0,
    insecure: bool = False,
    max_response_mb: float | None = None,
) -> EndpointConfig:
    """The endpoint to audit; without a base URL (provider auto or local) the model runs in this process.
    Several base URLs are replicas of one model (auditor/endpoint/replicas.py): one audit spread over them."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
    if not urls and provider in (AUTO, LOCAL):
        provider, urls = LOCAL, [LOCAL_ENDPOINT]
    key_file = None if api_key_file is None else Path(api_key_file)
    first, *replicas = [u.rstrip("/") for u in urls] or [""]
    return EndpointConfig(base_url=first, model=model, provider=provider, timeout=timeout,
                          api_key_env=api_key_env, api_key_file=key_file, insecure=insecure,
                          max_response_mb=max_response_mb, replicas=tuple(replicas))  # fmt: skip


def audit_settings(
    ep: EndpointConfig,
    dataset: str | Path,
    *,
    out: str | Path | None,
    cache: str | Path,
    **options: Unpack[AuditOptions],
) -> AuditConfig:
    """The validated AuditConfig for these options (the CLI's flags go through here too)."""
    opts: dict[str, Any] = {k: v for k, v in options.items() if k not in LIMITS}
    price = options.get("price_per_mtok")
    if price is None:  # a known hosted model's price (by provider, or by the host with auto)
        host = httpx.URL(ep.base_url).host
        price = price_for(HOSTED.get(host, "") if ep.provider == AUTO else ep.provider, ep.model)
    limits = Limits(tokens=options.get("max_tokens"), requests=options.get("max_requests"),
                    cost=options.get("max_cost"), seconds=options.get("max_time"), price_per_mtok=price)  # fmt: skip
    if "items" in opts:
        opts["sample"] = opts.pop("items")
    if "method" in opts:
        opts["method"] = parse_method(str(opts["method"]))
    for key in PATHS:
        if opts.get(key) is not None:
            opts[key] = Path(opts[key])
    if "control_run" in opts:  # one reference run or several (a sharper null)
        runs = opts["control_run"]
        opts["control_run"] = (() if runs is None else (Path(runs),) if isinstance(runs, str | Path)
                               else tuple(Path(r) for r in runs))  # fmt: skip
    return AuditConfig(endpoint=ep, dataset=Path(dataset), out=None if out is None else Path(out),
                       cache_path=Path(cache), limits=limits, **opts)  # fmt: skip


async def audit(
    base_url: str | Sequence[str] | None,
    dataset: str | Path,
    *,
    model: str = "",
    out: str | Path | None = None,
    cache: str | Path = DEFAULT_PATH,
    provider: str = AUTO,
    api_key_env: str | None = None,
    api_key_file: str | Path | None = None,
    timeout: float = 120.0,
    insecure: bool = False,
    max_response_mb: float | None = None,
    **options: Unpack[AuditOptions],
) -> Report:
    """Audit the model at `base_url` (None: a model loaded in this process, provider "local"; several URLs:
    replicas of one model) on `dataset` (a path, or a bundled name such as "mmlu"); returns the report."""
    ep = endpoint(base_url, model=model, provider=provider, api_key_env=api_key_env, api_key_file=api_key_file,
                  timeout=timeout, insecure=insecure, max_response_mb=max_response_mb)  # fmt: skip
    outcome = await run_audit(audit_settings(ep, dataset, out=out, cache=cache, **options))
    return outcome.report


def compare(
    runs: Sequence[str | Path] = (),
    *,
    results_db: str | Path | None = None,
    run_ids: Sequence[str] = (),
    out: str | Path | None = None,
) -> dict[str, Any]:
    """The leaderboard of finished runs: run directories, report.json files or globs, and/or the runs
    recorded in a results database (all, or those whose id starts with one of `run_ids`)."""
    if run_ids and results_db is None:
        raise UsageError("--run-id selects runs of --results-db: give --results-db PATH")
    if not runs and results_db is None:
        raise UsageError("no runs to compare: give run directories, report.json files, a quoted glob or --results-db")
    files = [load_run(p) for p in find_runs([str(r) for r in runs])] if runs else []
    given = {r.path.resolve() for r in files}
    stored = compare_runs(Path(results_db), run_ids) if results_db is not None else []
    board = leaderboard([*files, *(r for r in stored if r.path.resolve() not in given)])
    if out is not None:
        write_board(board, Path(out))
    return board

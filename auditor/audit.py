"""One audit, start to finish: items -> orderings -> prompts -> scheduler -> detector -> report.

This module orchestrates; it neither prints nor exits (the CLI does). Progress is reported through
a callback so the CLI can draw a bar.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from auditor import __version__
from auditor.assess import METHODS, assess, load_control
from auditor.cache import ScoreCache, cache_key, get_probe, put_probe
from auditor.detector import ItemFailure, ItemVerdict, judge_item, min_k_prob, span_score
from auditor.errors import AuditorError, UsageError
from auditor.items import Item, LoadResult, load_items
from auditor.orderings import Ordering, Rendered, Template, load_template, orderings_for
from auditor.probe import AUTO, ProbeResult, detect, probe, refusal
from auditor.report import Report, build_report
from auditor.retry import RetryPolicy
from auditor.sampling import stratified_sample
from auditor.scheduler import PromptResult, PromptTask, RunStats, Scheduler
from auditor.secrets import resolve_api_key
from providers.base import EndpointInfo, provider_class


@dataclass(frozen=True)
class EndpointConfig:
    base_url: str
    model: str = ""
    provider: str = "auto"
    api_key_env: str | None = None
    api_key_file: Path | None = None
    timeout: float = 120.0
    insecure: bool = False


@dataclass(frozen=True)
class AuditConfig:
    endpoint: EndpointConfig
    dataset: Path
    out: Path
    cache_path: Path
    limit: int | None = None
    sample: int | None = None  # --items N: a seeded subject-stratified sample
    template: str = "paper"
    max_orderings: int = 120
    seed: int = 0
    batch_size: int = 24
    concurrency: int = 8
    skip_invalid: bool = False
    attempts: int = 6
    retry_failed: bool = False
    method: str = "auditor"
    control_run: Path | None = None
    exclude_order_sensitive: bool = False
    alpha: float = 0.05


@dataclass
class Plan:
    load: LoadResult
    items: list[Item]
    template: Template
    orderings: list[list[Ordering]]
    rendered: list[list[Rendered]]

    @property
    def n_prompts(self) -> int:
        return sum(len(r) for r in self.rendered)


@dataclass
class AuditOutcome:
    report: Report
    stats: RunStats
    probe_cached: bool
    seconds: float
    cache_discarded: int = 0
    paths: list[Path] = field(default_factory=list)


def plan_audit(cfg: AuditConfig) -> Plan:
    """Everything that needs no network: load, validate, pick orderings, render prompts."""
    if cfg.limit is not None and cfg.limit < 1:
        raise UsageError("--limit must be at least 1")
    if cfg.method not in METHODS:
        raise UsageError(f"unknown --method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    if cfg.method.startswith("paper") and cfg.template != "paper":
        raise UsageError(f"--method {cfg.method} reproduces the reference code, template included: drop --template")
    if not 0 < cfg.alpha < 1:
        raise UsageError("--alpha must be between 0 and 1")
    if cfg.control_run is not None:
        load_control(cfg.control_run)  # fail before any request, not after the audit
    if cfg.limit is not None and cfg.sample is not None:
        raise UsageError("give --limit (the first N items) or --items (a stratified sample of N), not both")
    if cfg.sample is not None and cfg.sample < 1:
        raise UsageError("--items must be at least 1")
    loaded = load_items(cfg.dataset, skip_invalid=cfg.skip_invalid, limit=cfg.limit)
    items = loaded.items if cfg.sample is None else stratified_sample(loaded.items, cfg.sample, cfg.seed)
    template = load_template(cfg.template)
    orderings = [
        orderings_for(len(it.options), max_orderings=cfg.max_orderings, seed=cfg.seed, item_id=it.id) for it in items
    ]
    rendered = [[template.render(it, p) for p in perms] for it, perms in zip(items, orderings, strict=True)]
    return Plan(loaded, items, template, orderings, rendered)


def endpoint_secrets(ep: EndpointConfig) -> tuple[str, ...]:
    key = resolve_api_key(ep.api_key_env, ep.api_key_file, dict(os.environ))
    return (key,) if key else ()


def http_client(ep: EndpointConfig) -> httpx.AsyncClient:
    headers = {}
    for key in endpoint_secrets(ep):
        headers["Authorization"] = f"Bearer {key}"
    return httpx.AsyncClient(
        headers=headers,
        timeout=httpx.Timeout(ep.timeout, connect=min(10.0, ep.timeout)),
        verify=not ep.insecure,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        follow_redirects=False,
    )


async def probe_endpoint(
    client: httpx.AsyncClient, cache: ScoreCache, ep: EndpointConfig, *, refresh: bool
) -> tuple[ProbeResult, bool]:
    """The endpoint's capabilities, from the cache unless `refresh` (returns (result, cached)).

    With `--provider auto` the dialects are tried in turn and the first usable one is kept. The cached
    answer is used only while the server still describes itself the same way (model id, loaded
    weights, version: one GET, no scoring); a restart with other weights is probed anew.
    """
    key = {"endpoint": ep.base_url.rstrip("/"), "model": ep.model, "provider": ep.provider}
    if not refresh:
        known = _cached_probe(cache, key)
        if known is not None:
            adapter = provider_class(known.provider)(client, base_url=ep.base_url, model=ep.model)
            if await RetryPolicy().call(adapter.describe) == known.info:
                return known, True
    if ep.provider == AUTO:
        result, rows = await detect(client, base_url=ep.base_url, model=ep.model, exhaustive=False)
        if result is None:
            raise refusal(ep.base_url, rows)
    else:
        result = await probe(client, provider=ep.provider, base_url=ep.base_url, model=ep.model)
    put_probe(cache, **key, result=result.to_json())
    return result, False


def _cached_probe(cache: ScoreCache, key: dict[str, str]) -> ProbeResult | None:
    cached = get_probe(cache, **key)
    if cached is None:
        return None
    try:
        return ProbeResult.from_json(cached)
    except (KeyError, TypeError, ValueError):
        return None


async def run_audit(
    cfg: AuditConfig, *, on_start: Callable[[int], None] | None = None, on_progress: Callable[[int], None] | None = None
) -> AuditOutcome:
    started = datetime.now(UTC)
    plan = plan_audit(cfg)
    ep = cfg.endpoint
    with ScoreCache(cfg.cache_path) as cache:
        async with http_client(ep) as client:
            probed, probe_cached = await probe_endpoint(client, cache, ep, refresh=False)
            info = probed.info
            adapter = provider_class(probed.provider)(
                client,
                base_url=ep.base_url,
                model=info.model,
                max_tokens=probed.max_tokens,
                batch_size=cfg.batch_size,
            )
            # what the server says it loaded (vLLM: the weights' path) joins the cache key, so a different
            # checkpoint served under the same name and port never reuses another's scores
            params = {
                **adapter.scoring_params(),
                **({"model_root": info.extra["root"]} if info.extra.get("root") else {}),
            }
            tasks = [
                [
                    PromptTask(
                        cache_key(endpoint=adapter.base_url, model=info.model, prompt=r.text, params=params), r.text
                    )
                    for r in rows
                ]
                for rows in plan.rendered
            ]
            scheduler = Scheduler(
                adapter,
                cache,
                concurrency=cfg.concurrency,
                batch_size=cfg.batch_size,
                policy=RetryPolicy(attempts=cfg.attempts),
                on_prompt_done=on_progress,
                retry_failed=cfg.retry_failed,
                secrets=endpoint_secrets(ep),
            )
            if on_start is not None:
                on_start(plan.n_prompts)
            interrupted = False
            try:
                results = await scheduler.run(tasks)
            except asyncio.CancelledError:  # Ctrl-C: report what landed, then let the interrupt through
                interrupted = True
                results = _from_cache(cache, tasks)
        verdicts, failures = _judge(plan, results, cfg.seed, paper=cfg.method.startswith("paper"))
        first, last = cache.created_at([t.key for rows in tasks for t in rows])
        provenance = _provenance(cfg, plan, info, params, (first, last))
        assessment = assess(
            verdicts,
            plan.items,
            method=cfg.method,
            control=cfg.control_run,
            exclude_order_sensitive=cfg.exclude_order_sensitive,
            alpha=cfg.alpha,
            seed=cfg.seed,
        )
        report = build_report(
            verdicts,
            failures,
            provenance,
            skipped=[s.__dict__ for s in plan.load.skipped],
            partial=interrupted,
            assessment=assessment,
        )
        paths = report.write(cfg.out)
        seconds = (datetime.now(UTC) - started).total_seconds()
        outcome = AuditOutcome(report, scheduler.stats, probe_cached, seconds, cache.stats.discarded, paths)
    if interrupted:
        raise AuditInterrupted(outcome)
    return outcome


class AuditInterrupted(Exception):
    """Ctrl-C during scoring: a partial report was written; carries the outcome for the CLI."""

    def __init__(self, outcome: AuditOutcome) -> None:
        self.outcome = outcome
        super().__init__("interrupted")


def _from_cache(cache: ScoreCache, tasks: list[list[PromptTask]]) -> list[list[PromptResult]]:
    """Whatever landed before an interruption, as results; the rest is marked not scored."""
    out = []
    for rows in tasks:
        res = []
        for t in rows:
            record = cache.get(t.key)
            res.append(PromptResult(record, cached=True) if record else PromptResult(None, error=NOT_SCORED))
        out.append(res)
    return out


NOT_SCORED = "not scored (run interrupted)"


def _provenance(
    cfg: AuditConfig, plan: Plan, info: EndpointInfo, params: dict[str, Any], when: tuple[str | None, str | None]
) -> dict[str, Any]:
    ep = cfg.endpoint
    return {
        "endpoint": {
            "base_url": ep.base_url,
            "model": info.model,
            "model_root": info.extra.get("root"),
            "server": info.server,
            "server_version": info.server_version,
            "max_model_len": info.max_model_len,
            "provider": params.get("dialect", ep.provider),
            "scoring_params": params,
            "insecure_tls": ep.insecure,
        },
        "dataset": {
            "path": str(cfg.dataset),
            "sha256": dataset_sha256(plan.load.files, cfg.dataset),
            "files": len(plan.load.files),
            "items_loaded": len(plan.load.items),
            "items_skipped_invalid": len(plan.load.skipped),
            "limit": cfg.limit,
            "sample": cfg.sample,
        },
        "template": plan.template.identity(),
        "max_orderings": cfg.max_orderings,
        "seed": cfg.seed,
        "method": cfg.method,
        "tool": {"name": "auditor", "version": __version__},
        "time": {"first_scored": when[0], "last_scored": when[1]},
    }


def _judge(
    plan: Plan, results: list[list[PromptResult]], seed: int, paper: bool = False
) -> tuple[list[ItemVerdict], list[ItemFailure]]:
    verdicts: list[ItemVerdict] = []
    failures: list[ItemFailure] = []
    for item, perms, rows, res in zip(plan.items, plan.orderings, plan.rendered, results, strict=True):
        errors = [r.error for r in res if r.record is None]
        if errors and all(e == NOT_SCORED for e in errors):
            failures.append(ItemFailure(item.id, item.subject, NOT_SCORED))
            continue
        if errors:
            failures.append(
                ItemFailure(item.id, item.subject, f"{len(errors)} of {len(res)} orderings failed: {errors[0]}")
            )
            continue
        try:
            records = [r.record for r in res if r.record is not None]
            spans = [span_score(rec, rend, skip_label=paper) for rec, rend in zip(records, rows, strict=True)]
            verdicts.append(judge_item(item.id, item.subject, perms, spans, seed=seed, min_k=min_k_prob(records[0])))
        except AuditorError as err:
            failures.append(ItemFailure(item.id, item.subject, str(err)))
    return verdicts, failures


def dataset_sha256(files: list[Path], root: Path) -> str:
    """sha256 over (relative path, contents) of every loaded file, in load order."""
    h = hashlib.sha256()
    for f in files:
        rel = f.name if root.is_file() else f.relative_to(root).as_posix()
        h.update(rel.encode() + b"\x00")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def summary_line(report: Report) -> str:
    s = report.data["summary"]
    return (
        f"{s['n_items']} items, {s['n_leaked']} with the published order on top "
        f"({s['leak_rate']:.1%} vs chance {s['chance_rate']:.1%}), p = {s['p_value']:.3g}, "
        f"{s['n_failed']} failed"
    )

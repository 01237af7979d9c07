"""One audit, start to finish: items -> orderings -> prompts -> scheduler -> detector -> report.

This module orchestrates; it neither prints nor exits (the CLI does). Progress is reported through
a callback so the CLI can draw a bar.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from auditor import __version__
from auditor.assess import METHODS, assess, load_control
from auditor.budget import Budget, Limits, byte_upper_bound
from auditor.cache import ScoreCache, cache_key, get_probe, put_probe
from auditor.designs import Design, parse_design
from auditor.detector import ItemFailure, ItemVerdict, min_k_prob, span_score
from auditor.errors import AuditorError, UsageError
from auditor.items import Item, LoadResult, load_items
from auditor.orderings import Ordering, Rendered, Template, load_template
from auditor.probe import AUTO, ProbeResult, detect, probe, refusal
from auditor.report import Report, build_report
from auditor.retry import RetryPolicy
from auditor.sampling import stratified_sample
from auditor.scheduler import NOT_SCORED, PromptResult, PromptTask, RunStats, Scheduler, byte_bounds
from auditor.secrets import default_key_env, resolve_api_key
from auditor.sensitivity import option_set_key, order_sensitivity
from auditor.sequential import SequentialTest
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
    orderings: str = "all"  # an ordering design (auditor.designs)
    limits: Limits = field(default_factory=Limits)
    sequential: bool = False
    tolerance: float = 0.10
    keep_order_sensitive: bool = False  # --sequential leaves order-sensitive items out unless this is set


@dataclass
class Plan:
    load: LoadResult
    items: list[Item]  # what will be scored, in scoring order
    template: Template
    orderings: list[list[Ordering]]
    rendered: list[list[Rendered]]
    design: Design
    candidates: list[Item]  # the selection before --sequential set items aside
    set_aside: dict[str, list[str]] = field(default_factory=dict)  # reason -> item ids (--sequential)

    @property
    def n_prompts(self) -> int:
        return sum(len(r) for r in self.rendered)

    def full_protocol_prompts(self, max_orderings: int) -> int:
        """Prompts of the full protocol (every ordering, up to --max-orderings) on the candidate items."""
        return sum(min(math.factorial(len(it.options)), max_orderings) for it in self.candidates)


@dataclass
class AuditOutcome:
    report: Report
    stats: RunStats
    probe_cached: bool
    seconds: float
    cache_discarded: int = 0
    paths: list[Path] = field(default_factory=list)
    budget: Budget | None = None
    scored_not_used: int = 0  # items scored after the sequential test decided (in flight then)


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
    if not 0 < cfg.tolerance < 1:
        raise UsageError("--tolerance must be between 0 and 1 (a leaked fraction, e.g. 0.1)")
    if cfg.keep_order_sensitive and not cfg.sequential:
        raise UsageError("--keep-order-sensitive only applies to --sequential (full runs keep them unless excluded)")
    design = parse_design(cfg.orderings)
    loaded = load_items(cfg.dataset, skip_invalid=cfg.skip_invalid, limit=cfg.limit)
    items = loaded.items if cfg.sample is None else stratified_sample(loaded.items, cfg.sample, cfg.seed)
    candidates = list(items)
    set_aside: dict[str, list[str]] = {}
    if cfg.sequential:
        items, set_aside = sequential_order(items, cfg.seed, keep_order_sensitive=cfg.keep_order_sensitive)
    template = load_template(cfg.template)
    orderings = [
        design.prompts(len(it.options), seed=cfg.seed, item_id=it.id, max_orderings=cfg.max_orderings) for it in items
    ]
    rendered = [[template.render(it, p) for p in perms] for it, perms in zip(items, orderings, strict=True)]
    return Plan(loaded, items, template, orderings, rendered, design, candidates, set_aside)


def sequential_order(
    items: Sequence[Item], seed: int, *, keep_order_sensitive: bool
) -> tuple[list[Item], dict[str, list[str]]]:
    """Items in a seeded random order, one per option list (items sharing one are not independent), and
    without order-sensitive items unless kept (their published order is natural, not leaked)."""
    digest = hashlib.sha256(f"{seed}\x00sequential".encode()).digest()
    order = np.random.default_rng(int.from_bytes(digest[:8], "little")).permutation(len(items))
    kept: list[Item] = []
    aside: dict[str, list[str]] = {"order_sensitive": [], "shared_option_list": []}
    seen: set[str] = set()
    for i in order:
        it = items[int(i)]
        if not keep_order_sensitive and order_sensitivity(it):
            aside["order_sensitive"].append(it.id)
            continue
        key = option_set_key(it)
        if key in seen:
            aside["shared_option_list"].append(it.id)
            continue
        seen.add(key)
        kept.append(it)
    return kept, {k: v for k, v in aside.items() if v}


def endpoint_secrets(ep: EndpointConfig) -> tuple[str, ...]:
    key = resolve_api_key(
        ep.api_key_env, ep.api_key_file, dict(os.environ), default_env=default_key_env(ep.provider, ep.base_url)
    )
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
    budget = Budget(cfg.limits) if cfg.limits.any else None
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
            seq = SequentialTest(cfg.alpha, cfg.tolerance) if cfg.sequential else None
            watcher = _SequentialWatcher(plan, seq, cfg) if seq is not None else None
            scheduler = Scheduler(
                adapter,
                cache,
                concurrency=cfg.concurrency,
                batch_size=cfg.batch_size,
                policy=RetryPolicy(attempts=cfg.attempts),
                on_prompt_done=on_progress,
                retry_failed=cfg.retry_failed,
                secrets=endpoint_secrets(ep),
                budget=budget,
                bounds=_server_bounds(adapter) if budget is not None and cfg.limits.token_cap()[0] else byte_bounds,
                generated_per_prompt=generated_per_prompt(adapter),
                on_item_done=watcher.item_done if watcher is not None else None,
            )
            if on_start is not None:
                on_start(plan.n_prompts)
            interrupted = False
            try:
                left = budget.time_left() if budget is not None else None
                async with asyncio.timeout(None if left is None else max(0.0, left)):
                    results = await scheduler.run(tasks)
            except TimeoutError:  # --max-time: what is in flight was cancelled (and charged)
                assert budget is not None
                budget.stopped = budget.stopped or "time"
                results = _from_cache(
                    cache, tasks, f"{NOT_SCORED} (budget: --max-time {cfg.limits.seconds:g} s reached)"
                )
            except asyncio.CancelledError:  # Ctrl-C: report what landed, then let the interrupt through
                interrupted = True
                results = _from_cache(cache, tasks, f"{NOT_SCORED} (run interrupted)")
        if budget is not None:
            budget.close_all_reserved()
        used = watcher.used if watcher is not None and seq is not None and seq.decision else len(plan.items)
        paper = cfg.method.startswith("paper")
        verdicts, failures, not_scored = _judge(plan, results[:used], cfg.seed, cfg.max_orderings, paper=paper)
        outcome_extra = sum(any(r.record is not None and not r.cached for r in res) for res in results[used:])
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
        stopped_early = bool(not_scored) and (budget is not None and budget.stopped is not None)
        report = build_report(
            verdicts,
            failures,
            provenance,
            skipped=[s.__dict__ for s in plan.load.skipped],
            partial=interrupted or stopped_early,
            assessment=assessment,
            extra=_extra_sections(plan, cfg, results[:used], not_scored, budget, seq),
        )
        paths = report.write(cfg.out)
        seconds = (datetime.now(UTC) - started).total_seconds()
        outcome = AuditOutcome(
            report, scheduler.stats, probe_cached, seconds, cache.stats.discarded, paths, budget, outcome_extra
        )
    if interrupted:
        raise AuditInterrupted(outcome)
    return outcome


def generated_per_prompt(adapter: Any) -> int:
    """Tokens the dialect generates per prompt besides the echo (billed like prompt tokens)."""
    return 1 if adapter.max_tokens == 1 or not adapter.honours_max_tokens_zero else 0


def _server_bounds(adapter: Any) -> Callable[[Sequence[str]], Any]:
    """Reservations from the server's own token counts where it can tokenize, else UTF-8 bytes (also
    from then on, if its tokenize endpoint fails once)."""
    broken: list[bool] = []

    async def bounds(prompts: Sequence[str]) -> list[int]:
        count = getattr(adapter, "count_tokens", None)
        counted = None
        if count is not None and not broken:
            try:
                counted = await count(prompts)
            except AuditorError:
                broken.append(True)
        return list(counted) if counted is not None else [byte_upper_bound(p) for p in prompts]

    return bounds


class _SequentialWatcher:
    """Feeds finished items to the sequential test in scoring order (so the stopping point does not depend
    on which request happens to come back first) and stops dispatching once the test decides."""

    def __init__(self, plan: Plan, seq: SequentialTest, cfg: AuditConfig) -> None:
        self.plan, self.seq, self.cfg = plan, seq, cfg
        self.done: dict[int, list[PromptResult]] = {}
        self.used = 0  # items consumed by the test, a prefix of the scoring order

    def item_done(self, i: int, results: list[PromptResult]) -> str | None:
        self.done[i] = results
        while self.used in self.done and self.seq.decision is None:
            outcome = _judge_one(self.plan, self.used, self.done.pop(self.used), self.cfg.seed,
                                 self.cfg.max_orderings, paper=self.cfg.method.startswith("paper"))  # fmt: skip
            self.used += 1
            if isinstance(outcome, ItemVerdict):
                self.seq.update(outcome.n_orderings, outcome.rank_random == 1)
        if self.seq.decision is not None:
            return f"{NOT_SCORED} (sequential test decided '{self.seq.decision}' after {self.seq.n} items)"
        return None


class AuditInterrupted(Exception):
    """Ctrl-C during scoring: a partial report was written; carries the outcome for the CLI."""

    def __init__(self, outcome: AuditOutcome) -> None:
        self.outcome = outcome
        super().__init__("interrupted")


def _from_cache(cache: ScoreCache, tasks: list[list[PromptTask]], reason: str) -> list[list[PromptResult]]:
    """Whatever landed before the run stopped, as results; the rest is marked not scored."""
    out = []
    for rows in tasks:
        res = []
        for t in rows:
            record = cache.get(t.key)
            res.append(PromptResult(record, cached=True) if record else PromptResult(None, error=reason))
        out.append(res)
    return out


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
        "orderings": plan.design.name,
        "max_orderings": cfg.max_orderings,
        "seed": cfg.seed,
        "method": cfg.method,
        "sequential": {"alpha": cfg.alpha, "tolerance": cfg.tolerance, "keep_order_sensitive": cfg.keep_order_sensitive}
        if cfg.sequential
        else None,
        "tool": {"name": "auditor", "version": __version__},
        "time": {"first_scored": when[0], "last_scored": when[1]},
    }


def _judge_one(
    plan: Plan, i: int, res: list[PromptResult], seed: int, max_orderings: int, paper: bool = False
) -> ItemVerdict | ItemFailure | str:
    """An item's verdict, its failure, or (a string) why it was not scored."""
    item, perms, rows = plan.items[i], plan.orderings[i], plan.rendered[i]
    errors = [r.error or "" for r in res if r.record is None]
    if errors and all(r.not_scored for r in res if r.record is None):
        return errors[0]
    if errors:
        real = [e for e in errors if not e.startswith(NOT_SCORED)]
        return ItemFailure(item.id, item.subject, f"{len(errors)} of {len(res)} orderings failed: {real[0]}")
    try:
        records = [r.record for r in res if r.record is not None]
        spans = [span_score(rec, rend, skip_label=paper) for rec, rend in zip(records, rows, strict=True)]
        return plan.design.judge(item.id, item.subject, perms, spans, seed=seed, min_k=min_k_prob(records[0]),
                                 max_orderings=max_orderings)  # fmt: skip
    except AuditorError as err:
        return ItemFailure(item.id, item.subject, str(err))


def _judge(
    plan: Plan, results: list[list[PromptResult]], seed: int, max_orderings: int = 120, paper: bool = False
) -> tuple[list[ItemVerdict], list[ItemFailure], list[dict[str, str]]]:
    verdicts: list[ItemVerdict] = []
    failures: list[ItemFailure] = []
    not_scored: list[dict[str, str]] = []
    for i, res in enumerate(results):
        outcome = _judge_one(plan, i, res, seed, max_orderings, paper)
        if isinstance(outcome, ItemVerdict):
            verdicts.append(outcome)
        elif isinstance(outcome, ItemFailure):
            failures.append(outcome)
        else:
            not_scored.append({"id": plan.items[i].id, "reason": outcome})
    return verdicts, failures, not_scored


def _extra_sections(
    plan: Plan,
    cfg: AuditConfig,
    results: list[list[PromptResult]],
    not_scored: list[dict[str, str]],
    budget: Budget | None,
    seq: SequentialTest | None,
) -> dict[str, Any]:
    """report.json sections beyond the verdicts: what was spent against the full protocol, budgets,
    the sequential test, and what was not scored. Only scores (not this run's traffic) enter them, so a
    re-run from the cache writes the same report."""
    records = [r.record for res in results for r in res if r.record is not None]
    tokens = sum(r.prompt_tokens if r.prompt_tokens is not None else len(r.tokens) for r in records)
    nbytes = sum(len(rend.text.encode()) for rows, res in zip(plan.rendered[: len(results)], results, strict=True)
                 for rend, r in zip(rows, res, strict=True) if r.record is not None)  # fmt: skip
    per_byte = tokens / nbytes if nbytes else None
    full_prompts = plan.full_protocol_prompts(cfg.max_orderings)
    full_tokens = None
    if per_byte is not None:
        identity_bytes = [len(plan.template.render(it, tuple(range(len(it.options)))).text.encode())
                          for it in plan.candidates]  # fmt: skip
        full_tokens = round(per_byte * sum(
            b * min(math.factorial(len(it.options)), cfg.max_orderings)
            for b, it in zip(identity_bytes, plan.candidates, strict=True)
        ))  # fmt: skip
    extra: dict[str, Any] = {
        "spend": {
            "prompts_used": len(records),
            "prompt_tokens_used": tokens,
            "full_protocol": {
                "items": len(plan.candidates),
                "orderings": "all",
                "prompts": full_prompts,
                "prompt_tokens_estimate": full_tokens,
            },
            "share_of_full_protocol": tokens / full_tokens if full_tokens else None,
            "note": "tokens of the prompts behind this report's verdicts (cached ones included); the full "
            "protocol's tokens are estimated from the tokens per byte measured on them",
        },
        "not_scored": {"count": len(not_scored), "items": not_scored[:1000]},
    }
    if plan.set_aside:
        extra["set_aside"] = {k: {"count": len(v), "items": v} for k, v in plan.set_aside.items()}
    if seq is not None:
        extra["sequential"] = {**seq.to_json(), "items_available": len(plan.items)}
    if budget is not None:
        remaining = [rows for rows, res in zip(plan.rendered[: len(results)], results, strict=True)
                     if any(r.record is None for r in res)]  # fmt: skip
        remaining += plan.rendered[len(results) :] if seq is None else []
        cap, _ = budget.limits.token_cap()
        spent = budget.spent_tokens + budget.charged_tokens
        scored_items = sum(all(r.record is not None for r in res) for res in results)
        per_item = tokens / scored_items if scored_items else None
        left = None if cap is None else max(0, cap - spent)
        extra["budget"] = {
            **budget.to_json(),
            "to_finish": {
                "items": len(remaining),
                "prompts": sum(len(rows) for rows in remaining),
                "tokens_upper_bound": sum(byte_upper_bound(r.text) for rows in remaining for r in rows),
                "tokens_estimate": None if per_item is None else round(per_item * len(remaining)),
            },
            "left": {
                "tokens": left,
                "requests": None if budget.limits.requests is None else budget.limits.requests - budget.spent_requests,
                # what the unspent tokens would have bought, at the tokens per item measured in this run
                "items_it_would_buy": None if left is None or not per_item else int(left // per_item),
            },
        }
    return extra


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

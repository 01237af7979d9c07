"""One audit, start to finish: items -> orderings -> prompts -> scheduler -> detector -> report.

This module orchestrates; it neither prints nor exits (the CLI does). Progress is reported through
a callback so the CLI can draw a bar.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from auditor import __version__
from auditor.analysis.assess import assess
from auditor.analysis.detector import ItemStats
from auditor.analysis.sequential import SequentialTest
from auditor.endpoint.config import (
    endpoint_secrets,
    http_client,
    probe_endpoint,
    prompt_key,
    server_bounds,
)
from auditor.endpoint.replicas import ReplicaSet, agree, replica_set
from auditor.errors import BudgetExceeded
from auditor.input.export import export_clean
from auditor.report.build import build_report, write_report
from auditor.report.model import Report, to_json
from auditor.report.results_db import record_run
from auditor.report.spend import extra_sections
from auditor.run.config import AuditConfig
from auditor.run.digest import ItemDone, digest, judge
from auditor.run.impact import accuracy_from
from auditor.run.outputs import check_model, check_out
from auditor.run.plan import Lazy, Plan, dataset_sha256, plan_audit
from auditor.scoring.budget import Budget
from auditor.scoring.cache import ScoreCache
from auditor.scoring.retry import RetryPolicy
from auditor.scoring.scheduler import (
    NotScored,
    PromptFate,
    PromptResult,
    PromptTask,
    RunStats,
    Scheduler,
    Stop,
    byte_bounds,
)
from auditor.scoring.turns import EndpointTurn
from providers.base import EndpointInfo, Provider, provider_class

T = TypeVar("T")
CROSS_CHECK_PROMPTS = 2  # of the first item's prompts, scored on every replica before the run


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


async def run_audit(
    cfg: AuditConfig,
    *,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int, PromptFate], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> AuditOutcome:
    started = datetime.now(UTC)
    plan = plan_audit(cfg)
    ep = cfg.endpoint
    budget = Budget(cfg.limits) if cfg.limits.any else None
    existing = None if cfg.out is None else check_out(cfg.out, base_url=ep.base_url, dataset=str(cfg.dataset),
                                                      force=cfg.force)  # fmt: skip
    with ScoreCache(cfg.cache_path) as cache:
        cache.check_writable()
        async with _turn(cfg, budget, on_notice), http_client(ep) as client:
            probing = probe_endpoint(client, cache, ep, refresh=False)
            probed, probe_cached = await _within(budget, "probing the endpoint", probing)
            info = probed.info
            if cfg.out is not None:
                check_model(cfg.out, existing, info.model, force=cfg.force)
            provider: Provider = provider_class(probed.provider)(
                client,
                base_url=ep.base_url,
                model=info.model,
                max_tokens=probed.max_tokens,
                batch_size=cfg.batch_size,
            )
            if ep.replicas:
                building = replica_set(client, cache, ep, (probed, provider), concurrency=cfg.concurrency,
                                       batch_size=cfg.batch_size, on_down=on_notice)  # fmt: skip
                provider = await _within(budget, "probing the replicas", building)
            params, key = prompt_key(provider, info, insecure=ep.insecure)
            scored = plan.scored()
            tasks = Lazy(lambda i: [PromptTask(key(r.text), r.text) for r in scored[i]], len(plan.items))
            checked = 0
            if isinstance(provider, ReplicaSet) and tasks:
                checking = agree(provider, tasks[0][:CROSS_CHECK_PROMPTS], cache)
                checked = await _within(budget, "cross-checking the replicas", checking)
            collector = _Collector(plan, cfg, cache, tasks)
            seq = collector.seq
            scheduler = Scheduler(
                provider,
                cache,
                concurrency=cfg.concurrency * len(ep.urls),
                batch_size=cfg.batch_size,
                policy=RetryPolicy(attempts=cfg.attempts, retry_unreachable=True),  # it answered the probe
                on_prompt_done=on_progress,
                retry_failed=cfg.retry_failed,
                secrets=endpoint_secrets(ep),
                budget=budget,
                bounds=server_bounds(provider) if budget is not None and cfg.limits.token_cap()[0] else byte_bounds,
                generated_per_prompt=provider.generated_per_prompt(),
            )
            scheduler.stats.requests += checked
            if on_start is not None:
                on_start(plan.n_prompts)
            interrupted = False
            try:
                left = budget.time_left() if budget is not None else None
                async with asyncio.timeout(None if left is None else max(0.0, left)):
                    await scheduler.stream(tasks, collector.item_done)
            except TimeoutError:  # --max-time: what is in flight was cancelled (and charged)
                assert budget is not None
                budget.end("time")
                collector.from_cache(Stop(NotScored.TIME, f"budget: --max-time {cfg.limits.seconds:g} s reached"))
            except asyncio.CancelledError:  # Ctrl-C: report what landed, then let the interrupt through
                interrupted = True
                collector.from_cache(Stop(NotScored.INTERRUPTED, "run interrupted"))
        if budget is not None:
            budget.close_all_reserved()
        done = collector.finished()
        used = collector.used if seq is not None and seq.decision else len(plan.items)
        judged = judge(plan, done[:used])
        scored_not_used = sum(d.fresh for d in done[used:])
        first, last = _span(d.times for d in done[:used])  # the items behind the verdict (not those in flight)
        provenance = _provenance(cfg, plan, info, params, (first, last))
        if isinstance(provider, ReplicaSet):
            provenance["endpoint"]["replicas"] = provider.shares()
        assessment = assess(
            judged.stats,
            plan.candidates,  # all selected items: group sizes count those sharing a list and not scored
            method=cfg.method,
            control=cfg.control_run,
            exclude_order_sensitive=cfg.exclude_order_sensitive,
            alpha=cfg.alpha,
            seed=cfg.seed,
            n_degenerate=len(judged.degenerate),
        )
        stopped_early = bool(judged.not_scored) and (budget is not None and budget.stopped is not None)
        stopped_by = "interrupted" if interrupted else (budget.stopped if stopped_early and budget else None)
        report = build_report(
            judged.stats,
            judged.failures,
            provenance,
            skipped=plan.load.skipped,
            stopped_by=stopped_by,
            assessment=assessment,
            sections=extra_sections(plan, cfg, done[:used], judged.not_scored, budget, seq),
            texts={it.id: it for it in plan.items},
            degenerate=judged.degenerate,
        )
        if cfg.accuracy:
            report = replace(report, accuracy=accuracy_from(plan, done[:used], judged.stats, assessment))
        del done, judged, assessment  # the report holds what is kept: their memory goes to the outputs' making
        collector.done.clear()
        data = to_json(report)
        paths = write_report(report, cfg.out, data) if cfg.out is not None else []
        if cfg.export_clean is not None:
            paths += export_clean(cfg.export_clean, plan.load, data, dataset=plan.path)
        record_run(cfg.results_path, data, cfg.out)
        seconds = (datetime.now(UTC) - started).total_seconds()
        outcome = AuditOutcome(
            report, scheduler.stats, probe_cached, seconds, cache.stats.discarded, paths, budget, scored_not_used
        )
    if interrupted:
        raise AuditInterrupted(outcome)
    return outcome


async def _within(budget: Budget | None, doing: str, work: Awaitable[T]) -> T:
    """Work before scoring (waiting for the cache, the probe), inside --max-time like everything else."""
    left = budget.time_left() if budget is not None else None
    try:
        async with asyncio.timeout(None if left is None else max(0.0, left)):
            return await work
    except TimeoutError:
        assert budget is not None
        budget.end("time")
        raise BudgetExceeded("time", f"--max-time {budget.limits.seconds:g} s reached while {doing};"
                             " nothing was scored") from None  # fmt: skip


@asynccontextmanager
async def _turn(
    cfg: AuditConfig, budget: Budget | None, on_notice: Callable[[str], None] | None
) -> AsyncIterator[None]:
    """This run's turn on the cache for its endpoint (auditor/scoring/turns.py), waited for within --max-time."""
    turn = EndpointTurn(cfg.cache_path, " ".join(cfg.endpoint.urls))

    def waiting(holder: str) -> None:
        if on_notice is not None:
            on_notice(f"waiting for another auditor run on {cfg.cache_path} against this endpoint ({holder}): its"
                      " scores will be reused, not paid for again")  # fmt: skip

    try:
        await _within(budget, "waiting for another run on this cache", turn.wait(waiting))
        yield
    finally:
        turn.release()


class _Collector:
    """Each item's digest as it finishes (auditor/run/digest.py; its records are dropped then), and the
    sequential test fed in scoring order (so the stopping point does not depend on which request happens
    to come back first), which stops dispatching once it decides."""

    def __init__(self, plan: Plan, cfg: AuditConfig, cache: ScoreCache, tasks: Sequence[list[PromptTask]]) -> None:
        self.plan, self.cfg, self.cache, self.tasks = plan, cfg, cache, tasks
        self.done: list[ItemDone | None] = [None] * len(plan.items)
        self.seq = SequentialTest(cfg.alpha, cfg.tolerance) if cfg.sequential else None
        self.used = 0  # items consumed by the sequential test, a prefix of the scoring order

    def item_done(self, i: int, results: list[PromptResult]) -> Stop | None:
        self._digest(i, results)
        seq = self.seq
        if seq is None:
            return None
        while self.used < len(self.done) and seq.decision is None:
            d = self.done[self.used]
            if d is None:
                break
            self.used += 1
            if isinstance(d.outcome, ItemStats):
                seq.update(d.outcome.n_orderings, d.outcome.rank_random == 1)
        if seq.decision is not None:
            return Stop(NotScored.DECIDED, f"sequential test decided '{seq.decision}' after {seq.n} items")
        return None

    def from_cache(self, stop: Stop) -> None:
        """The run stopped (time, Ctrl-C): the items not finished, from what landed in the cache; the
        rest of their prompts are marked not scored."""
        for i, d in enumerate(self.done):
            if d is None:
                tasks = self.tasks[i]
                found = self.cache.get_many([t.key for t in tasks])
                res = [PromptResult(found[t.key], cached=True) if t.key in found else stop.result() for t in tasks]
                self._digest(i, res)  # not fed to the sequential test: it stopped with the run

    def _digest(self, i: int, results: list[PromptResult]) -> None:
        times = self.cache.take_times([t.key for t in self.tasks[i]])
        cfg = self.cfg
        self.done[i] = digest(self.plan, i, results, seed=cfg.seed, max_orderings=cfg.max_orderings,
                              paper=cfg.method.is_paper, times=times)  # fmt: skip

    def finished(self) -> list[ItemDone]:
        missing = [i for i, d in enumerate(self.done) if d is None]
        if missing:
            raise AssertionError(f"items {missing[:5]} were never handed back by the scheduler")
        return [d for d in self.done if d is not None]


class AuditInterrupted(Exception):
    """Ctrl-C during scoring: a partial report was written; carries the outcome for the CLI."""

    def __init__(self, outcome: AuditOutcome) -> None:
        self.outcome = outcome
        super().__init__("interrupted")


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
            "description": plan.description,
            "bundled": None
            if plan.bundled is None
            else {
                "name": plan.bundled.name,
                "source": plan.bundled.source,
                "licence": plan.bundled.licence,
                "items_sha256": plan.bundled.meta["items_sha256"],
            },
            "sha256": dataset_sha256(plan.load.files, plan.path),
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
        "method": cfg.method.value,
        "alpha": cfg.alpha,
        "exclude_order_sensitive": cfg.exclude_order_sensitive,
        "sequential": {"alpha": cfg.alpha, "tolerance": cfg.tolerance, "keep_order_sensitive": cfg.keep_order_sensitive}
        if cfg.sequential
        else None,
        "tool": {"name": "auditor", "version": __version__},
        "time": {"first_scored": when[0], "last_scored": when[1]},
    }


def _span(times: Iterable[tuple[str | None, str | None]]) -> tuple[str | None, str | None]:
    """Earliest and latest of the items' scoring times (deterministic across re-runs from the cache)."""
    pairs = list(times)
    lows = [lo for lo, _ in pairs if lo is not None]
    highs = [hi for _, hi in pairs if hi is not None]
    return (min(lows) if lows else None, max(highs) if highs else None)

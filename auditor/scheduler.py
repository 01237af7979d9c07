"""Fan-out of scoring requests: cache first, keyed concurrency, retries, failures as outcomes.

Each item's prompts (all its orderings) are dispatched together: cached ones are read, the rest are
cut into requests of at most `batch_size` prompts. Requests to one endpoint share one semaphore.
A request that fails for good is split into single prompts so one refused prompt cannot sink its
neighbours; a prompt that still fails is recorded with its reason and the audit goes on. Every
scored prompt is written to the cache the moment it lands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from auditor.cache import ScoreCache, clear_failure, get_failure, put_failure
from auditor.errors import CapabilityError, EndpointError, HTTPStatusError
from auditor.limiter import AdaptiveLimiter, endpoint_limiter
from auditor.retry import Decision, RetryPolicy
from auditor.secrets import redact
from providers.base import LogprobRecord, Provider


@dataclass(frozen=True)
class PromptTask:
    key: str
    text: str


@dataclass(frozen=True)
class PromptResult:
    record: LogprobRecord | None
    error: str | None = None
    cached: bool = False


@dataclass
class RunStats:
    requests: int = 0  # HTTP scoring requests sent (retries included)
    prompts_sent: int = 0
    scored: int = 0
    cached: int = 0
    failed: int = 0
    failed_earlier: int = 0  # known failures from an earlier run, not re-sent
    retries: int = 0
    rate_limited: int = 0


@dataclass
class Scheduler:
    provider: Provider
    cache: ScoreCache
    concurrency: int = 8
    batch_size: int = 24
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    on_prompt_done: Callable[[int], None] | None = None
    retry_failed: bool = False  # re-send prompts that failed for good in an earlier run
    secrets: tuple[str, ...] = ()  # redacted from every recorded error
    stats: RunStats = field(default_factory=RunStats)
    limiter: AdaptiveLimiter | None = None

    async def run(self, items: Sequence[Sequence[PromptTask]]) -> list[list[PromptResult]]:
        """Score every item's prompts; the result mirrors the input's shape."""
        results: list[list[PromptResult]] = [[] for _ in items]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(items)):
            queue.put_nowait(i)
        limiter = endpoint_limiter(self.provider.base_url, self.provider.model, self.concurrency)
        self.limiter = limiter

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                results[i] = await self._score_item(items[i], limiter)

        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, min(self.concurrency, len(items)))):
                tg.create_task(worker())
        return results

    async def _score_item(self, tasks: Sequence[PromptTask], limiter: AdaptiveLimiter) -> list[PromptResult]:
        out: list[PromptResult | None] = [None] * len(tasks)
        missing: list[int] = []
        for k, task in enumerate(tasks):
            record = self.cache.get(task.key)
            if record is not None:
                out[k] = PromptResult(record, cached=True)
                self.stats.cached += 1
                continue
            earlier = None if self.retry_failed else get_failure(self.cache, task.key)
            if earlier is None:
                missing.append(k)
            else:  # known to fail: not paid for again unless --retry-failed
                out[k] = PromptResult(None, error=earlier, cached=True)
                self.stats.failed_earlier += 1
        if len(missing) < len(tasks):
            self._progress(len(tasks) - len(missing))
        size = max(1, min(self.batch_size, self.provider.max_prompts_per_request))
        chunks = [missing[s : s + size] for s in range(0, len(missing), size)]
        done = await asyncio.gather(*(self._score_chunk([tasks[k] for k in c], limiter) for c in chunks))
        for chunk, chunk_results in zip(chunks, done, strict=True):
            for k, res in zip(chunk, chunk_results, strict=True):
                out[k] = res
        return [r for r in out if r is not None]

    async def _score_chunk(self, tasks: Sequence[PromptTask], limiter: AdaptiveLimiter) -> list[PromptResult]:
        try:
            records = await self._request([t.text for t in tasks], limiter)
        except CapabilityError:
            raise  # the endpoint cannot do this at all: stop the run, do not record a failure per prompt
        except EndpointError as err:
            if len(tasks) > 1:  # isolate the prompt(s) the server refuses
                parts = await asyncio.gather(*(self._score_chunk([t], limiter) for t in tasks))
                return [r for part in parts for r in part]
            self.stats.failed += 1
            reason = redact(str(err), self.secrets)
            base, model = self.provider.base_url, self.provider.model
            put_failure(self.cache, tasks[0].key, endpoint=base, model=model, reason=reason)
            self._progress(1)
            return [PromptResult(None, error=reason)]
        results = []
        for task, record in zip(tasks, records, strict=True):
            self.cache.put(task.key, endpoint=self.provider.base_url, model=self.provider.model, record=record)
            if self.retry_failed:
                clear_failure(self.cache, task.key)
            results.append(PromptResult(record))
        self.stats.scored += len(records)
        self._progress(len(records))
        return results

    async def _request(self, prompts: list[str], limiter: AdaptiveLimiter) -> list[LogprobRecord]:
        async def once() -> list[LogprobRecord]:
            async with limiter.slot() as generation:
                self.stats.requests += 1
                self.stats.prompts_sent += len(prompts)
                try:
                    records = await self.provider.score(prompts)
                except HTTPStatusError as err:
                    if err.status in (429, 503):
                        limiter.overload(generation)
                    raise
                limiter.success()
                return records

        def on_retry(decision: Decision) -> None:
            self.stats.retries += 1
            if decision.kind == "rate_limited":
                self.stats.rate_limited += 1

        return await self.policy.call(once, on_retry)

    def _progress(self, n: int) -> None:
        if self.on_prompt_done is not None:
            self.on_prompt_done(n)

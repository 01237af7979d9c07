"""Fan-out of scoring requests: cache first, keyed concurrency, retries, failures as outcomes.

Each item's prompts (all its orderings) are dispatched together: cached ones are read, the rest are
cut into requests of at most `batch_size` prompts. Requests to one endpoint share one semaphore.
A request that fails for good is split into single prompts so one refused prompt cannot sink its
neighbours; a prompt that still fails is recorded with its reason and the audit goes on. Every
scored prompt is written to the cache the moment it lands.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from auditor.cache import ScoreCache
from auditor.errors import EndpointError
from auditor.retry import Decision, RetryPolicy
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
    retries: int = 0
    rate_limited: int = 0


_LIMITS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def endpoint_semaphore(base_url: str, model: str, limit: int) -> asyncio.Semaphore:
    """One semaphore per (endpoint, model) in the running event loop, shared by every scheduler."""
    per_loop = _LIMITS.setdefault(asyncio.get_running_loop(), {})
    key = (base_url, model)
    sem = per_loop.get(key)
    if sem is None:
        sem = per_loop[key] = asyncio.Semaphore(limit)
    return sem


@dataclass
class Scheduler:
    provider: Provider
    cache: ScoreCache
    concurrency: int = 8
    batch_size: int = 24
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    on_prompt_done: Callable[[int], None] | None = None
    stats: RunStats = field(default_factory=RunStats)

    async def run(self, items: Sequence[Sequence[PromptTask]]) -> list[list[PromptResult]]:
        """Score every item's prompts; the result mirrors the input's shape."""
        results: list[list[PromptResult]] = [[] for _ in items]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(items)):
            queue.put_nowait(i)
        sem = endpoint_semaphore(self.provider.base_url, self.provider.model, self.concurrency)

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                results[i] = await self._score_item(items[i], sem)

        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, min(self.concurrency, len(items)))):
                tg.create_task(worker())
        return results

    async def _score_item(self, tasks: Sequence[PromptTask], sem: asyncio.Semaphore) -> list[PromptResult]:
        out: list[PromptResult | None] = [None] * len(tasks)
        missing: list[int] = []
        for k, task in enumerate(tasks):
            record = self.cache.get(task.key)
            if record is None:
                missing.append(k)
            else:
                out[k] = PromptResult(record, cached=True)
                self.stats.cached += 1
        if len(missing) < len(tasks):
            self._progress(len(tasks) - len(missing))
        size = max(1, min(self.batch_size, self.provider.max_prompts_per_request))
        chunks = [missing[s : s + size] for s in range(0, len(missing), size)]
        done = await asyncio.gather(*(self._score_chunk([tasks[k] for k in c], sem) for c in chunks))
        for chunk, chunk_results in zip(chunks, done, strict=True):
            for k, res in zip(chunk, chunk_results, strict=True):
                out[k] = res
        return [r for r in out if r is not None]

    async def _score_chunk(self, tasks: Sequence[PromptTask], sem: asyncio.Semaphore) -> list[PromptResult]:
        try:
            records = await self._request([t.text for t in tasks], sem)
        except EndpointError as err:
            if len(tasks) > 1:  # isolate the prompt(s) the server refuses
                parts = await asyncio.gather(*(self._score_chunk([t], sem) for t in tasks))
                return [r for part in parts for r in part]
            self.stats.failed += 1
            self._progress(1)
            return [PromptResult(None, error=str(err))]
        results = []
        for task, record in zip(tasks, records, strict=True):
            self.cache.put(task.key, endpoint=self.provider.base_url, model=self.provider.model, record=record)
            results.append(PromptResult(record))
        self.stats.scored += len(records)
        self._progress(len(records))
        return results

    async def _request(self, prompts: list[str], sem: asyncio.Semaphore) -> list[LogprobRecord]:
        async def once() -> list[LogprobRecord]:
            async with sem:
                self.stats.requests += 1
                self.stats.prompts_sent += len(prompts)
                return await self.provider.score(prompts)

        def on_retry(decision: Decision) -> None:
            self.stats.retries += 1
            if decision.kind == "rate_limited":
                self.stats.rate_limited += 1

        return await self.policy.call(once, on_retry)

    def _progress(self, n: int) -> None:
        if self.on_prompt_done is not None:
            self.on_prompt_done(n)

"""Fan-out of scoring requests: cache first, keyed concurrency, retries, failures as outcomes.

Each item's prompts (all its orderings) are dispatched together: cached ones are read, the rest are
cut into requests of at most `batch_size` prompts. Requests to one endpoint share one semaphore.
A request refused for good by something a prompt can cause (a 4xx, a garbled or oversized answer, an
alignment failure) is split into single prompts so one refused prompt cannot sink its neighbours; if
the first `PROBE_SINGLES` of them fail alone too, the trouble is the server's and the rest fail without
being sent. Server trouble (timeouts, resets, 5xx, 429) is retried but never split. Every item has a
request allowance, its requests x `--attempts` plus one per prompt, that retries and splits draw on:
a broken server costs an item that many requests at most (a garbled answer cost 50 per item, a hung
one 150, before). A prompt that still fails is recorded with its reason and the audit goes on. Every
scored prompt is written to the cache the moment it lands.

Items are dispatched in input order. With a `Budget`, an item's requests are reserved (upper bound of
their tokens, one request per chunk) before it is dispatched, under a lock so reservations follow
input order; retries reserve again. When a reservation is refused, dispatching stops: the items
scored are always a prefix of the input order (what a sequential test needs), and the rest come
back as "not scored" with the limit that stopped them. The handler that `stream` hands each finished
item to can stop dispatching too (by returning a Stop); `stream` keeps no results (an audit of 300k prompts
holds per-item outcomes only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from auditor.endpoint.secrets import redact
from auditor.errors import BudgetExceeded, CapabilityError, EndpointError, HTTPStatusError, RetryBudgetSpent
from auditor.scoring.budget import Budget, Hold, byte_upper_bound
from auditor.scoring.cache import ScoreCache, clear_failures, get_failures, put_failure
from auditor.scoring.limiter import AdaptiveLimiter, endpoint_limiter
from auditor.scoring.retry import Decision, RetryPolicy, classify
from providers.base import LogprobRecord, Provider


@dataclass(frozen=True)
class PromptTask:
    key: str
    text: str


PROBE_SINGLES = 3  # prompts of a refused request tried alone before the rest are
PromptFate = Literal["sent", "cached", "unsent"]  # for progress: answered (or failed), from the cache, never sent


class NotScored(StrEnum):
    """Why a prompt was never sent: not a failure, nothing was asked of the server."""

    BUDGET = "budget"  # a hard budget (tokens, requests, cost) would have been passed
    TIME = "time"  # --max-time ran out
    INTERRUPTED = "interrupted"  # Ctrl-C
    DECIDED = "decided"  # the sequential test had decided


@dataclass(frozen=True)
class Stop:
    """Dispatching stopped: why, and the words the report gives every prompt left unsent."""

    kind: NotScored
    detail: str

    @property
    def reason(self) -> str:
        return f"not scored ({self.detail})"

    def result(self) -> PromptResult:
        return PromptResult(None, error=self.reason, not_scored=self.kind)


@dataclass(frozen=True)
class PromptResult:
    record: LogprobRecord | None
    error: str | None = None
    cached: bool = False
    not_scored: NotScored | None = None  # set when the prompt was never sent


async def byte_bounds(prompts: Sequence[str]) -> list[int]:
    return [byte_upper_bound(p) for p in prompts]


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
    retries_by_reason: dict[str, int] = field(default_factory=dict)  # timeout, connection, 429, 5xx, 408, garbled


@dataclass
class Scheduler:
    provider: Provider
    cache: ScoreCache
    concurrency: int = 8
    batch_size: int = 24
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    # called as prompts finish: (how many, "sent" | "cached" | "unsent"), so progress can count them apart
    on_prompt_done: Callable[[int, PromptFate], None] | None = None
    retry_failed: bool = False  # re-send prompts that failed for good in an earlier run
    secrets: tuple[str, ...] = ()  # redacted from every recorded error
    stats: RunStats = field(default_factory=RunStats)
    limiter: AdaptiveLimiter | None = None
    budget: Budget | None = None
    # per-prompt token upper bounds for reservations (the server's /tokenize, else UTF-8 bytes)
    bounds: Callable[[Sequence[str]], Awaitable[list[int]]] = byte_bounds
    generated_per_prompt: int = 0  # tokens the dialect generates per prompt (charged on top)
    stopped: Stop | None = None  # why dispatching stopped early, if it did

    async def run(self, items: Sequence[Sequence[PromptTask]]) -> list[list[PromptResult]]:
        """Score every item's prompts; the result mirrors the input's shape (every record held: `stream`
        is what an audit uses)."""
        results: list[list[PromptResult]] = [[] for _ in items]

        def keep(i: int, res: list[PromptResult]) -> None:
            results[i] = res

        await self.stream(items, keep)
        return results

    async def stream(
        self, items: Sequence[Sequence[PromptTask]], on_item: Callable[[int, list[PromptResult]], Stop | None]
    ) -> None:
        """Score every item's prompts, giving each item's results to `on_item(i, results)` as it finishes
        (completion order), then those never dispatched, with why. A Stop returned stops dispatching.
        `items[i]` is read once, when item i is dispatched (it may be built then)."""
        handed = [False] * len(items)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(items)):
            queue.put_nowait(i)
        limiter = endpoint_limiter(self.provider.base_url, self.provider.model, self.concurrency)
        self.limiter = limiter
        dispatch = asyncio.Lock()

        async def worker() -> None:
            while self.stopped is None:
                async with dispatch:  # reservations in input order
                    if self.stopped is not None:
                        return
                    try:
                        i = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    tasks = items[i]
                    try:
                        prepared = await self._prepare(tasks)
                    except BudgetExceeded as err:
                        self.stopped = Stop(NotScored.BUDGET, f"budget: {err}")
                        return
                results = await self._score_prepared(tasks, prepared, limiter)
                handed[i] = True
                stop = on_item(i, results)
                if self.stopped is None:
                    self.stopped = stop

        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, min(self.concurrency, len(items)))):
                tg.create_task(worker())
        stop = self.stopped or Stop(NotScored.INTERRUPTED, "run stopped")
        for i, done in enumerate(handed):
            if not done:
                on_item(i, [stop.result() for _ in items[i]])

    async def _prepare(self, tasks: Sequence[PromptTask]) -> _Prepared:
        """Cache lookups, chunking, and (with a budget) the item's reservation."""
        out: list[PromptResult | None] = [None] * len(tasks)
        missing: list[int] = []
        found = self.cache.get_many([t.key for t in tasks])  # one query per item
        for k, task in enumerate(tasks):
            record = found.get(task.key)
            if record is not None:
                out[k] = PromptResult(record, cached=True)
                self.stats.cached += 1
            else:
                missing.append(k)
        if missing and not self.retry_failed:  # known to fail: not paid for again unless --retry-failed
            earlier = get_failures(self.cache, [tasks[k].key for k in missing])
            for k in missing:
                if tasks[k].key in earlier:
                    out[k] = PromptResult(None, error=earlier[tasks[k].key], cached=True)
                    self.stats.failed_earlier += 1
            missing = [k for k in missing if tasks[k].key not in earlier]
        size = max(1, min(self.batch_size, self.provider.max_prompts_per_request))
        chunks = [missing[s : s + size] for s in range(0, len(missing), size)]
        bounds: dict[int, int] = {}
        holds: list[Hold | None] = [None] * len(chunks)
        if self.budget is not None and missing:
            counted = await self.bounds([tasks[k].text for k in missing])
            bounds = {k: b + self.generated_per_prompt for k, b in zip(missing, counted, strict=True)}
            item_hold = await self._reserve(sum(bounds.values()), len(chunks))
            holds = [self.budget.take(item_hold, sum(bounds[k] for k in c)) for c in chunks]
            self.budget.release(item_hold)  # empty by now
        if len(missing) < len(tasks):
            self._progress(len(tasks) - len(missing), "cached")
        return _Prepared(out, chunks, holds, bounds)

    async def _reserve(self, tokens: int, requests: int) -> Hold:
        """An item's reservation. Refused while other items' reservations are outstanding, it waits for
        them to settle (settling gives back what the bound over-estimated) and tries again; refused
        with nothing outstanding, the budget is spent and BudgetExceeded ends dispatching."""
        assert self.budget is not None
        while True:
            try:
                return self.budget.reserve(tokens, requests)
            except BudgetExceeded as err:
                if err.limit == "time" or self.budget.reserved_requests == 0:
                    self.budget.end(err.limit)
                    raise
            await self.budget.changed()

    async def _score_prepared(
        self, tasks: Sequence[PromptTask], prep: _Prepared, limiter: AdaptiveLimiter
    ) -> list[PromptResult]:
        out = prep.out
        allowance = _Allowance(len(prep.chunks) * self.policy.attempts + sum(len(c) for c in prep.chunks))
        done = await asyncio.gather(
            *(
                self._score_chunk([tasks[k] for k in c], limiter, allowance, hold, [prep.bounds.get(k, 0) for k in c])
                for c, hold in zip(prep.chunks, prep.holds, strict=True)
            )
        )
        for chunk, chunk_results in zip(prep.chunks, done, strict=True):
            for k, res in zip(chunk, chunk_results, strict=True):
                out[k] = res
        return [r for r in out if r is not None]

    async def _score_chunk(
        self,
        tasks: Sequence[PromptTask],
        limiter: AdaptiveLimiter,
        allowance: _Allowance,
        hold: Hold | None = None,
        bounds: Sequence[int] = (),
    ) -> list[PromptResult]:
        try:
            records = await self._request([t.text for t in tasks], limiter, allowance, hold, sum(bounds))
        except CapabilityError:
            raise  # the endpoint cannot do this at all: stop the run, do not record a failure per prompt
        except BudgetExceeded as err:  # a retry or a split the budget cannot pay for: not a failure
            stop = Stop(NotScored.BUDGET, f"budget: {err}")
            if self.stopped is None:
                self.stopped = stop
            if self.budget is not None:
                self.budget.end(err.limit)
            self._progress(len(tasks), "unsent")
            return [stop.result() for _ in tasks]
        except EndpointError as err:
            if len(tasks) > 1 and _prompt_can_cause(err):
                return await self._split(tasks, limiter, allowance, bounds, str(err))
            return self._fail(tasks, str(err))
        self.cache.put_many([(t.key, r) for t, r in zip(tasks, records, strict=True)],
                            endpoint=self.provider.base_url, model=self.provider.model)  # one transaction  # fmt: skip
        if self.retry_failed:
            clear_failures(self.cache, [t.key for t in tasks])
        results = [PromptResult(r) for r in records]
        self.stats.scored += len(records)
        self._progress(len(records), "sent")
        return results

    async def _split(
        self, tasks: Sequence[PromptTask], limiter: AdaptiveLimiter, allowance: _Allowance, bounds: Sequence[int],
        why: str,
    ) -> list[PromptResult]:  # fmt: skip
        """Isolate the prompt(s) the server refuses: alone, the first few, then (unless they all fail) the rest."""
        singles = [bounds[j : j + 1] for j in range(len(tasks))] if bounds else [() for _ in tasks]

        async def alone(js: range) -> list[PromptResult]:
            parts = await asyncio.gather(*(self._score_chunk([tasks[j]], limiter, allowance, None, singles[j])
                                           for j in js))  # fmt: skip
            return [r for part in parts for r in part]

        head = await alone(range(min(PROBE_SINGLES, len(tasks))))
        if len(tasks) > PROBE_SINGLES and all(r.record is None and not r.not_scored for r in head):
            reason = (f"not sent alone: the request failed ({why}) and so did its first {PROBE_SINGLES} prompts"
                      " sent one by one, so the trouble is the server's")  # fmt: skip
            return head + self._fail(tasks[PROBE_SINGLES:], reason)
        return head + await alone(range(PROBE_SINGLES, len(tasks)))

    def _fail(self, tasks: Sequence[PromptTask], why: str) -> list[PromptResult]:
        """Each prompt failed for good: recorded (a later run skips it unless --retry-failed) with its reason."""
        reason = redact(why, self.secrets)
        base, model = self.provider.base_url, self.provider.model
        for task in tasks:
            put_failure(self.cache, task.key, endpoint=base, model=model, reason=reason)
        self.stats.failed += len(tasks)
        self._progress(len(tasks), "sent")
        return [PromptResult(None, error=reason) for _ in tasks]

    async def _request(
        self,
        prompts: list[str],
        limiter: AdaptiveLimiter,
        allowance: _Allowance,
        prepaid: Hold | None = None,
        bound: int = 0,
    ) -> list[LogprobRecord]:
        budget = self.budget
        unused = [prepaid]

        async def once() -> list[LogprobRecord]:
            if allowance.left <= 0:
                raise RetryBudgetSpent(f"not sent: this item's {allowance.total} requests (its requests x --attempts,"
                                       f" + 1 per prompt) are spent; last error: {allowance.last}")  # fmt: skip
            allowance.left -= 1
            hold = None
            if budget is not None:  # the first attempt spends the item's reservation, retries reserve anew
                first = unused.pop() if unused else None
                hold = first if first is not None else budget.reserve(bound, 1)
            try:
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
            except BaseException as err:
                if budget is not None and hold is not None:
                    budget.charge(hold)
                if isinstance(err, EndpointError):
                    allowance.last = str(err)[:300]
                raise
            if budget is not None and hold is not None:
                used = sum(r.counted_tokens for r in records)
                budget.settle(hold, used + self.generated_per_prompt * len(records))
            return records

        def on_retry(decision: Decision) -> None:
            self.stats.retries += 1
            why = decision.reason or decision.kind
            self.stats.retries_by_reason[why] = self.stats.retries_by_reason.get(why, 0) + 1
            if decision.kind == "rate_limited":
                self.stats.rate_limited += 1

        return await self.policy.call(once, on_retry)

    def _progress(self, n: int, fate: PromptFate) -> None:
        if self.on_prompt_done is not None:
            self.on_prompt_done(n, fate)


def _prompt_can_cause(err: EndpointError) -> bool:
    """A failure that one prompt of a request can cause (worth splitting), not the server's state."""
    return not isinstance(err, RetryBudgetSpent) and classify(err).kind not in ("transient", "rate_limited")


@dataclass
class _Allowance:
    """Requests one item may still send; retries and splits draw on it."""

    total: int
    left: int = -1
    last: str = ""

    def __post_init__(self) -> None:
        self.left = self.total if self.left < 0 else self.left


@dataclass
class _Prepared:
    out: list[PromptResult | None]
    chunks: list[list[int]]
    holds: list[Hold | None]
    bounds: dict[int, int]

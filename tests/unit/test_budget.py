"""Hard budgets: the accounting, and a property test of the scheduler against a counting server."""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.errors import BudgetExceeded, HTTPStatusError, TransportError, UsageError
from auditor.scoring.budget import Budget, Limits, byte_upper_bound
from auditor.scoring.cache import ScoreCache
from auditor.scoring.retry import RetryPolicy
from auditor.scoring.scheduler import PromptTask, Scheduler
from providers.base import EndpointInfo, LogprobRecord


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reserve_settle_charge_release() -> None:
    b = Budget(Limits(tokens=100, requests=3))
    h1 = b.reserve(40)
    h2 = b.reserve(50)
    with pytest.raises(BudgetExceeded) as err:
        b.reserve(20)  # 40 + 50 + 20 > 100 although nothing is settled yet
    assert err.value.limit == "tokens" and b.stopped is None  # the scheduler decides whether that ends the run
    b.settle(h1, 30)  # the server counted fewer than reserved: the difference comes back
    b.charge(h2)  # failed attempt: charged in full
    assert (b.spent_tokens, b.charged_tokens, b.reserved_tokens) == (30, 50, 0)
    h3 = b.reserve(20)
    with pytest.raises(BudgetExceeded) as err2:
        b.reserve(0)  # a fourth request
    assert err2.value.limit == "requests"
    b.release(h3)  # never sent: neither tokens nor a request
    assert b.tokens_used() == 80 and b.requests_used() == 2
    with pytest.raises(ValueError):
        b.settle(h3, 1)


def test_cost_is_a_token_cap_and_needs_a_price() -> None:
    limits = Limits(cost=0.5, price_per_mtok=2.0, tokens=10**9)
    assert limits.token_cap() == (250_000, "cost")
    b = Budget(limits)
    b.settle(b.reserve(250_000), 250_000)
    assert b.to_json()["cost"] == pytest.approx(0.5)
    with pytest.raises(BudgetExceeded) as err:
        b.reserve(1)
    assert err.value.limit == "cost"
    with pytest.raises(UsageError, match="price"):
        Limits(cost=1.0)
    with pytest.raises(UsageError, match="positive"):
        Limits(tokens=0)


def test_time_limit_refuses_new_requests() -> None:
    clock = Clock()
    b = Budget(Limits(seconds=10), clock=clock)
    b.release(b.reserve(5))
    clock.now = 10.0
    with pytest.raises(BudgetExceeded) as err:
        b.reserve(5)
    assert err.value.limit == "time"


def test_byte_bound_covers_multibyte_text() -> None:
    assert byte_upper_bound("abc") == 3 + 8
    assert byte_upper_bound("中文") == 6 + 8


class CountingServer:
    """Bills every request it receives (even the ones it then fails), like a strict hosted API."""

    name = "counting"
    base_url = "http://counting/v1"
    model = "m"

    def __init__(self, rng: random.Random, fail_rate: float, max_delay: float) -> None:
        self.rng = rng
        self.fail_rate = fail_rate
        self.max_delay = max_delay
        self.billed_tokens = 0
        self.requests = 0
        self.items_seen: set[int] = set()

    @property
    def max_prompts_per_request(self) -> int:
        return 1000

    def scoring_params(self) -> dict[str, Any]:
        return {}

    async def describe(self) -> EndpointInfo:
        return EndpointInfo(self.base_url, self.model)

    @staticmethod
    def count(prompt: str) -> int:
        return len(prompt.split()) + 1  # words plus a BOS: never more than bytes + 8

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        self.requests += 1
        self.billed_tokens += sum(self.count(p) for p in prompts) + len(prompts)  # + one generated token each
        for p in prompts:
            self.items_seen.add(int(p.split()[1]))
        await asyncio.sleep(self.rng.random() * self.max_delay)
        roll = self.rng.random()
        if roll < self.fail_rate / 3:
            raise HTTPStatusError("busy", status=503, retry_after=0.0)
        if roll < 2 * self.fail_rate / 3:
            raise TransportError("connection reset")
        if roll < self.fail_rate and len(prompts) == 1:
            raise HTTPStatusError("prompt refused", status=400)
        return [
            LogprobRecord(
                tokens=(*p.split(), "<s>"),
                logprobs=(None,) + (-1.0,) * len(p.split()),
                offsets=(0,) * (len(p.split()) + 1),
                prompt_tokens=self.count(p),
            )
            for p in prompts
        ]


def _items(rng: random.Random, n_items: int) -> list[list[PromptTask]]:
    out = []
    for i in range(n_items):
        n = rng.randint(1, 24)
        out.append([PromptTask(f"{i}-{j}", f"item {i} ordering {j} " + "word " * rng.randint(0, 30)) for j in range(n)])
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_items=st.integers(1, 12),
    concurrency=st.integers(1, 8),
    batch_size=st.integers(1, 10),
    max_tokens=st.integers(1, 4000),
    max_requests=st.one_of(st.none(), st.integers(1, 60)),
    fail_rate=st.sampled_from([0.0, 0.1, 0.4]),
)
def test_scheduler_never_overruns_a_budget(
    seed: int,
    n_items: int,
    concurrency: int,
    batch_size: int,
    max_tokens: int,
    max_requests: int | None,
    fail_rate: float,
) -> None:
    rng = random.Random(seed)
    server = CountingServer(rng, fail_rate, max_delay=0.002)
    items = _items(rng, n_items)
    budget = Budget(Limits(tokens=max_tokens, requests=max_requests))

    async def go() -> list[list[Any]]:
        with tempfile.TemporaryDirectory() as tmp, ScoreCache(Path(tmp) / "c.sqlite") as cache:
            scheduler = Scheduler(
                server,  # type: ignore[arg-type]
                cache,
                concurrency=concurrency,
                batch_size=batch_size,
                policy=RetryPolicy(attempts=3, base_wait=0.0, max_wait=0.0),
                budget=budget,
                generated_per_prompt=1,
            )
            return await scheduler.run(items)

    results = asyncio.run(go())
    assert server.billed_tokens <= max_tokens
    assert max_requests is None or server.requests <= max_requests
    assert budget.tokens_used() <= max_tokens and budget.reserved_tokens == 0
    assert server.billed_tokens <= budget.spent_tokens + budget.charged_tokens  # the ledger never under-counts
    # dispatch follows input order: the items the server saw are a prefix
    assert server.items_seen == set(range(len(server.items_seen)))
    for rows, tasks in zip(results, items, strict=True):
        assert len(rows) == len(tasks)
        assert all(r.record is not None or r.error for r in rows)


def test_a_large_budget_changes_nothing(tmp_path: Path) -> None:
    rng = random.Random(1)
    server = CountingServer(rng, 0.0, 0.0)
    items = _items(rng, 6)
    budget = Budget(Limits(tokens=10**9, requests=10**6))

    async def go() -> list[list[Any]]:
        with ScoreCache(tmp_path / "c.sqlite") as cache:
            s = Scheduler(server, cache, batch_size=8, budget=budget, generated_per_prompt=1)  # type: ignore[arg-type]
            return await s.run(items)

    results = asyncio.run(go())
    assert all(r.record is not None for rows in results for r in rows)
    assert budget.spent_tokens == server.billed_tokens and budget.charged_tokens == 0
    assert budget.spent_requests == server.requests and budget.stopped is None


def test_stop_marks_the_rest_not_scored_and_cache_is_free(tmp_path: Path) -> None:
    rng = random.Random(2)
    server = CountingServer(rng, 0.0, 0.0)
    items = [[PromptTask(f"{i}-{j}", f"item {i} ordering {j}") for j in range(4)] for i in range(5)]
    per_item = sum(byte_upper_bound(t.text) + 1 for t in items[0])

    async def go(budget: Budget) -> list[list[Any]]:
        with ScoreCache(tmp_path / "c.sqlite") as cache:
            s = Scheduler(server, cache, concurrency=1, budget=budget, generated_per_prompt=1)  # type: ignore[arg-type]
            return await s.run(items)

    actual = sum(CountingServer.count(t.text) + 1 for t in items[0])  # what the server bills per item
    cap = 2 * actual + per_item + 5  # room for two items' bills and one more reservation, not two
    first = asyncio.run(go(Budget(Limits(tokens=cap))))
    assert [all(r.record is not None for r in rows) for rows in first] == [True, True, True, False, False]
    assert all(r.not_scored and "budget" in (r.error or "") for rows in first[3:] for r in rows)
    billed = server.billed_tokens
    assert billed == 3 * actual
    # the same command again: the three cached items cost nothing, so the last two now fit
    again = asyncio.run(go(Budget(Limits(tokens=cap))))
    assert all(r.record is not None for rows in again for r in rows)
    assert server.billed_tokens - billed == 2 * actual

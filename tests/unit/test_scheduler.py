from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from auditor.errors import HTTPStatusError, ResponseFormatError
from auditor.scoring.cache import ScoreCache, get_failure
from auditor.scoring.retry import RetryPolicy
from auditor.scoring.scheduler import PromptTask, Scheduler
from providers.base import EndpointInfo, LogprobRecord


def record(text: str) -> LogprobRecord:
    return LogprobRecord(tokens=("<s>", text), logprobs=(None, -float(len(text))), offsets=(0, 0))


class FakeProvider:
    name = "fake"
    base_url = "http://fake/v1"
    model = "m"

    def __init__(self, refuse: set[str] = frozenset(), flaky: int = 0, delay: float = 0.0) -> None:  # type: ignore[assignment]
        self.refuse = refuse
        self.flaky = flaky
        self.delay = delay
        self.batches: list[list[str]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def max_prompts_per_request(self) -> int:
        return 1000

    def scoring_params(self) -> dict[str, Any]:
        return {}

    async def describe(self) -> EndpointInfo:
        return EndpointInfo(self.base_url, self.model)

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            self.batches.append(list(prompts))
            if self.flaky > 0:
                self.flaky -= 1
                raise HTTPStatusError("busy", status=503, retry_after=0.0)
            if any(p in self.refuse for p in prompts):
                raise HTTPStatusError("prompt too long", status=400)
            return [record(p) for p in prompts]
        finally:
            self.in_flight -= 1


def tasks(item: int, n: int) -> list[PromptTask]:
    return [PromptTask(f"k{item}-{j}", f"item{item}-ordering{j}") for j in range(n)]


async def test_batches_cache_and_progress(tmp_path: Path) -> None:
    provider = FakeProvider()
    done: list[tuple[int, str]] = []
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        s = Scheduler(provider, cache, concurrency=2, batch_size=10,  # type: ignore[arg-type]
                      on_prompt_done=lambda n, fate: done.append((n, fate)))  # fmt: skip
        items = [tasks(i, 24) for i in range(5)]
        results = await s.run(items)
        assert [len(r) for r in results] == [24] * 5
        assert all(
            r.record == record(t.text)
            for rs, ts in zip(results, items, strict=True)
            for r, t in zip(rs, ts, strict=True)
        )
        assert sorted(len(b) for b in provider.batches) == [4] * 5 + [10] * 10  # 24 = 10 + 10 + 4
        assert sum(n for n, _ in done) == 120 and {f for _, f in done} == {"sent"}
        assert s.stats.scored == 120 and s.stats.requests == 15

        done.clear()  # progress tells cached prompts apart from sent ones
        again = Scheduler(provider, cache, concurrency=2, batch_size=10,  # type: ignore[arg-type]
                          on_prompt_done=lambda n, fate: done.append((n, fate)))  # fmt: skip
        results2 = await again.run(items)
        assert again.stats.requests == 0 and again.stats.cached == 120
        assert sum(n for n, _ in done) == 120 and {f for _, f in done} == {"cached"}
        assert [[r.record for r in rs] for rs in results2] == [[r.record for r in rs] for rs in results]


async def test_refused_prompt_is_isolated_and_recorded(tmp_path: Path) -> None:
    bad = "item0-ordering3"
    provider = FakeProvider(refuse={bad})
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        s = Scheduler(provider, cache, batch_size=24, policy=RetryPolicy(attempts=2))  # type: ignore[arg-type]
        [res] = await s.run([tasks(0, 6)])
        assert [r.record is None for r in res] == [False, False, False, True, False, False]
        assert "HTTP 400" in (res[3].error or "")
        assert s.stats.failed == 1 and s.stats.scored == 5
        # the failure is not cached: a later run asks again
        assert cache.get("k0-3") is None and cache.get("k0-2") is not None


async def test_transient_errors_are_retried(tmp_path: Path) -> None:
    provider = FakeProvider(flaky=2)
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        s = Scheduler(provider, cache, policy=RetryPolicy(attempts=4))  # type: ignore[arg-type]
        [res] = await s.run([tasks(0, 3)])
        assert all(r.record is not None for r in res)
        assert s.stats.retries == 2 and s.stats.requests == 3


async def test_concurrency_is_bounded_per_endpoint(tmp_path: Path) -> None:
    provider = FakeProvider(delay=0.01)
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        s = Scheduler(provider, cache, concurrency=3, batch_size=1)  # type: ignore[arg-type]
        await s.run([tasks(i, 4) for i in range(10)])
        assert provider.max_in_flight == 3


class BrokenProvider(FakeProvider):
    """Every request fails the same way: `garbled` (a 2xx that is not a response) or `busy` (503)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        self.batches.append(list(prompts))
        if self.how == "garbled":
            raise ResponseFormatError("expected 24 choices, got no")
        raise HTTPStatusError("overloaded", status=503, retry_after=0.0)


async def test_a_garbling_server_costs_an_item_a_few_requests_not_fifty(tmp_path: Path) -> None:
    provider = BrokenProvider("garbled")
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        s = Scheduler(provider, cache, batch_size=24, policy=RetryPolicy(attempts=6, base_wait=0))  # type: ignore[arg-type]
        [res] = await s.run([tasks(0, 24)])
    assert all(r.record is None for r in res) and s.stats.failed == 24
    # the batch twice (garbled is retried once), then 3 prompts alone (twice each); the other 21 not sent
    assert len(provider.batches) == 2 + 3 * 2
    assert "so the trouble is the server's" in (res[-1].error or "")


async def test_server_trouble_is_retried_but_never_split(tmp_path: Path) -> None:
    provider = BrokenProvider("busy")
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        s = Scheduler(provider, cache, batch_size=24, policy=RetryPolicy(attempts=4, base_wait=0))  # type: ignore[arg-type]
        [res] = await s.run([tasks(0, 24)])
        assert all(get_failure(cache, t.key) for t in tasks(0, 24))  # recorded: --retry-failed re-sends them
    assert len(provider.batches) == 4 and all(len(b) == 24 for b in provider.batches)
    assert all("HTTP 503" in (r.error or "") for r in res)


async def test_an_item_never_sends_more_than_its_allowance(tmp_path: Path) -> None:
    refuse = {f"item0-ordering{j}" for j in (0, 5, 9)}  # each batch of 4 holds a refused prompt: every split runs
    provider = FakeProvider(refuse=refuse)
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        s = Scheduler(provider, cache, batch_size=4, policy=RetryPolicy(attempts=1))  # type: ignore[arg-type]
        [res] = await s.run([tasks(0, 12)])
    assert [r.record is None for r in res] == [j in (0, 5, 9) for j in range(12)]
    assert len(provider.batches) <= 3 * 1 + 12  # requests x attempts + one per prompt


async def test_stream_hands_each_item_over_once_and_keeps_no_record(tmp_path: Path) -> None:
    """`stream` gives every item's results to the handler as it finishes and holds none of them: once the
    handler lets go, the records are gone (an audit of 300k prompts must not keep every token's logprob)."""
    import gc
    import weakref

    provider = FakeProvider(delay=0.001)
    handed: list[int] = []
    refs: list[weakref.ref[LogprobRecord]] = []

    def on_item(i: int, results: list[Any]) -> None:
        handed.append(i)
        assert [r.record.tokens[1] for r in results] == [f"item{i}-ordering{j}" for j in range(6)]
        refs.extend(weakref.ref(r.record) for r in results)

    with ScoreCache(tmp_path / "c.sqlite") as cache:
        s = Scheduler(provider, cache, concurrency=4, batch_size=6)  # type: ignore[arg-type]
        await s.stream([tasks(i, 6) for i in range(40)], on_item)
        gc.collect()
        assert sorted(handed) == list(range(40)) and len(refs) == 240
        assert not any(r() is not None for r in refs)
        kept = await Scheduler(provider, cache, concurrency=4, batch_size=6).run([tasks(i, 6) for i in range(3)])  # type: ignore[arg-type]
        assert all(r.record is not None and r.cached for res in kept for r in res)  # `run` keeps them, from the cache

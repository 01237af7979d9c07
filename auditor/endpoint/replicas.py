"""Replicas of one model: several endpoints serving the same weights, used as one provider.

- Spreading: a request goes to the live replica with the most free room (in flight / its allowed
  concurrency). It is pull-based: a replica that answers faster frees its slots sooner and so takes
  more of the work, without a speed model to tune. Each replica has its own adaptive concurrency
  (AIMD on its own 429/503 answers, auditor/scoring/limiter.py), up to `--concurrency`.
- Failure: a replica that refuses connections is marked down at once; one that resets, times out or
  answers 5xx is marked down after `STRIKES` such failures in a row. Requests in flight on it fail and
  the scheduler's retry sends them to the others (the scheduler charges and counts them as retries).
  Nothing is recorded from a failed exchange, so no prompt is scored or cached twice. A replica that
  is down gets one trial request after `revive_after` seconds; when every replica is down, requests go
  to the one down longest, so the scheduler's retries end as they would with one endpoint.
- Identity: the answers' cache identity is the model (its name as served, the server software and
  version; the loaded weights' path joins the cache key in auditor/endpoint/config.py), not a URL, so
  replicas share one cache and a run on another set of replicas of the same model reuses it.
- Agreement: `check_same_model` refuses replicas that describe themselves differently, and `cross_check`
  scores the same prompts on every replica before the run: replicas that disagree (different weights
  behind one name) stop the run with ReplicasDisagree, before anything is spent on the audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from auditor.endpoint.config import EndpointConfig, probe_endpoint
from auditor.endpoint.probe import ProbeResult
from auditor.errors import HTTPStatusError, ReplicasDisagree, TransportError, Unreachable
from auditor.scoring.cache import ScoreCache
from auditor.scoring.limiter import AdaptiveLimiter
from auditor.scoring.scheduler import PromptTask
from providers.base import EndpointInfo, LogprobRecord, Provider, provider_class

STRIKES = 2  # failures in a row (reset, timeout, 5xx) that take a replica out
AGREEMENT_NATS = 0.05  # per token: float32 CPU and bf16 GPU servers of one checkpoint agree well within this


@dataclass
class Replica:
    provider: Provider
    limiter: AdaptiveLimiter
    in_flight: int = 0
    requests: int = 0  # scoring requests sent to it
    answered: int = 0  # of which answered
    prompts: int = 0  # prompts it answered
    failures: int = 0
    strikes: int = 0
    down_since: float | None = None
    down_reason: str = ""
    downs: int = 0

    @property
    def url(self) -> str:
        return self.provider.base_url

    def room(self) -> float:
        return (self.limiter.allowed - self.in_flight) / self.limiter.allowed

    def to_json(self) -> dict[str, Any]:
        return {"base_url": self.url, "requests": self.requests, "answered": self.answered, "prompts": self.prompts,
                "failures": self.failures, "times_down": self.downs,
                "down": self.down_since is not None, "down_reason": self.down_reason or None}  # fmt: skip


@dataclass
class ReplicaSet(Provider):
    """The `Provider` the scheduler sees: scoring goes to one replica at a time, chosen per request."""

    replicas: list[Replica]
    revive_after: float = 10.0
    on_down: Callable[[str], None] | None = None  # told once per time a replica goes down
    _cond: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)

    name = "replicas"

    def __post_init__(self) -> None:
        if not self.replicas:
            raise ValueError("a replica set needs at least one replica")
        first = self.replicas[0].provider
        self.base_url, self.model, self.max_tokens = first.base_url, first.model, first.max_tokens
        self._client = first._client

    @classmethod
    def of(cls, members: Sequence[Provider], concurrency: int, **kw: Any) -> ReplicaSet:
        return cls([Replica(p, AdaptiveLimiter(concurrency)) for p in members], **kw)

    @property
    def first(self) -> Provider:
        return self.replicas[0].provider

    @property
    def max_prompts_per_request(self) -> int:
        return min(r.provider.max_prompts_per_request for r in self.replicas)

    def scoring_params(self) -> dict[str, Any]:
        return self.first.scoring_params()

    def request_body(self, prompts: Sequence[str]) -> dict[str, Any]:
        return self.first.request_body(prompts)

    async def describe(self) -> EndpointInfo:
        return await self.first.describe()

    def identity(self, info: EndpointInfo) -> tuple[str, str]:
        server = " ".join(s for s in (info.server, info.server_version) if s) or "server"
        return f"replicas of {info.model} ({server})", info.model

    def generated_per_prompt(self) -> int:
        return self.first.generated_per_prompt()

    async def count_tokens(self, prompts: Sequence[str], *, concurrency: int = 8) -> list[int] | None:
        live = [r for r in self.replicas if r.down_since is None] or self.replicas
        return await live[0].provider.count_tokens(prompts, concurrency=concurrency)

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        replica = await self._take()
        generation = replica.limiter.generation
        replica.requests += 1
        try:
            records = await replica.provider.score(prompts)
        except (TransportError, HTTPStatusError) as err:
            self._failed(replica, err, generation)  # waiters are woken below, with the slot given back
            raise
        finally:
            async with self._cond:
                replica.in_flight -= 1
                self._cond.notify_all()
        replica.limiter.success()
        replica.answered += 1
        replica.prompts += len(records)
        replica.strikes = 0
        if replica.down_since is not None:  # a trial request came back: in service again
            replica.down_since, replica.down_reason = None, ""
        return records

    def shares(self) -> list[dict[str, Any]]:
        """Per replica: what it was sent and answered, and whether it is down (for the report)."""
        return [r.to_json() for r in self.replicas]

    async def _take(self) -> Replica:
        async with self._cond:
            while True:
                chosen, wait = self._choose(time.monotonic())
                if chosen is not None:
                    chosen.in_flight += 1
                    return chosen
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), timeout=wait)

    def _choose(self, now: float) -> tuple[Replica | None, float | None]:
        """The replica for the next request, or None and how long to wait before looking again."""
        down = [r for r in self.replicas if r.down_since is not None and r.in_flight == 0]
        trial = [r for r in down if now - (r.down_since or now) >= self.revive_after]
        if trial:  # one request to see whether it is back
            return min(trial, key=lambda r: r.down_since or 0.0), None
        live = [r for r in self.replicas if r.down_since is None and r.in_flight < r.limiter.allowed]
        if live:
            return max(live, key=lambda r: (r.room(), -r.in_flight)), None
        if len(down) == len(self.replicas):  # all down: let the scheduler's retries see it and end
            return min(down, key=lambda r: r.down_since or 0.0), None
        due = [self.revive_after - (now - (r.down_since or now)) for r in down]
        return None, max(0.05, min(due)) if due else None

    def _failed(self, replica: Replica, err: Exception, generation: int) -> None:
        replica.failures += 1
        if isinstance(err, HTTPStatusError):
            if err.status in (429, 503):
                replica.limiter.overload(generation)  # busy, not broken
                return
            if err.status < 500:
                return  # the request's fault (4xx), not the replica's
        replica.strikes += 1
        if replica.down_since is None and (isinstance(err, Unreachable) or replica.strikes >= STRIKES):
            replica.down_since = time.monotonic()
            replica.down_reason = str(err)[:200]
            replica.downs += 1
            if self.on_down is not None:
                live = sum(r.down_since is None for r in self.replicas)
                self.on_down(f"replica {replica.url} is down ({replica.down_reason}); "
                             f"its requests go to the {live} other(s)")  # fmt: skip
        elif replica.down_since is not None:
            replica.down_since = time.monotonic()  # a failed trial: wait again


def check_same_model(infos: Sequence[EndpointInfo], dialects: Sequence[str]) -> None:
    """Replicas must be one model on one kind of server: the same dialect, model id, weights and version."""
    first = infos[0]

    def sig(info: EndpointInfo, dialect: str) -> tuple[Any, ...]:
        return dialect, info.model, info.server, info.server_version, info.extra.get("root")

    for info, dialect in zip(infos[1:], dialects[1:], strict=True):
        if sig(info, dialect) != sig(first, dialects[0]):
            raise ReplicasDisagree(
                f"replicas are not one model: {first.base_url} is {_describe(first, dialects[0])}, "
                f"{info.base_url} is {_describe(info, dialect)}; give --base-url only for replicas of one deployment"
            )


def _describe(info: EndpointInfo, dialect: str) -> str:
    root = info.extra.get("root")
    parts = [f"{dialect} serving {info.model!r}", root and f"weights {root}", info.server, info.server_version]
    return " ".join(str(p) for p in parts if p)


async def cross_check(
    members: Sequence[Provider], prompts: Sequence[str], tolerance: float = AGREEMENT_NATS
) -> list[LogprobRecord]:
    """Score `prompts` on every replica; the first replica's records when all agree (same tokens, each
    token's logprob within `tolerance` nats), else ReplicasDisagree naming the prompt and the gap."""
    answers = await asyncio.gather(*(m.score(prompts) for m in members))
    for member, records in zip(members[1:], answers[1:], strict=True):
        for k, (a, b) in enumerate(zip(answers[0], records, strict=True)):
            if a.tokens != b.tokens:
                raise ReplicasDisagree(f"replicas {members[0].base_url} and {member.base_url} tokenize prompt {k}"
                                       f" differently ({len(a.tokens)} vs {len(b.tokens)} tokens): not one"
                                       " model")  # fmt: skip
            gap = max((abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)
                       if x is not None and y is not None), default=0.0)  # fmt: skip
            if gap > tolerance:
                raise ReplicasDisagree(f"replicas {members[0].base_url} and {member.base_url} disagree on prompt {k}"
                                       f" by up to {gap:.3g} nats per token (tolerance {tolerance:g}): not the same"
                                       " weights behind one name")  # fmt: skip
    return answers[0]


async def replica_set(
    client: httpx.AsyncClient,
    cache: ScoreCache,
    ep: EndpointConfig,
    first: tuple[ProbeResult, Provider],
    *,
    concurrency: int,
    batch_size: int,
    on_down: Callable[[str], None] | None = None,
) -> ReplicaSet:
    """The replica set of `ep` (its first URL already probed: `first`): every other URL probed (cached like
    any probe), all checked to be one model, each with `concurrency` slots of its own."""
    probed, provider = first
    results = [probed]
    members = [provider]
    for url in ep.replicas:
        result, _ = await probe_endpoint(client, cache, replace(ep, base_url=url, replicas=()), refresh=False)
        results.append(result)
        members.append(provider_class(result.provider)(client, base_url=url, model=result.info.model,
                                                       max_tokens=result.max_tokens,
                                                       batch_size=batch_size))  # fmt: skip
    check_same_model([r.info for r in results], [r.provider for r in results])
    return ReplicaSet.of(members, concurrency, on_down=on_down)


async def agree(replicas: ReplicaSet, sample: Sequence[PromptTask], cache: ScoreCache) -> int:
    """`cross_check` on `sample` (a few of the audit's own prompts); the first replica's answers are cached
    as the audit's (they are real scores of its prompts). Returns the scoring requests it sent."""
    if not sample:
        return 0
    members = [r.provider for r in replicas.replicas]
    records = await cross_check(members, [t.text for t in sample])
    cache.put_many([(t.key, r) for t, r in zip(sample, records, strict=True)],
                   endpoint=replicas.base_url, model=replicas.model)  # fmt: skip
    return len(members)

"""Adaptive concurrency per endpoint (AIMD): back off under 429/503, creep back up on success.

The limit starts at the user's `--concurrency` (its ceiling). An overload answer halves it, once per
"generation": requests that were already in flight when the limit dropped cannot halve it again, so
one burst of 429s counts as one signal. Each success adds 1/limit (about +1 per limit's worth of
successes), as TCP congestion control does.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class AdaptiveLimiter:
    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be >= 1")
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self.generation = 0
        self.decreases = 0
        self.lowest = float(ceiling)
        self._cond = asyncio.Condition()

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one of the `allowed` slots; yields the generation the request started in."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.allowed)
            self.in_flight += 1
            generation = self.generation
        try:
            yield generation
        finally:
            async with self._cond:
                self.in_flight -= 1
                self._cond.notify_all()

    def success(self) -> None:
        self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)

    def overload(self, generation: int) -> None:
        if generation != self.generation:
            return  # this burst already halved the limit
        self.generation += 1
        self.decreases += 1
        self.limit = max(1.0, self.limit / 2.0)
        self.lowest = min(self.lowest, self.limit)


_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], AdaptiveLimiter]] = (
    weakref.WeakKeyDictionary()
)


def endpoint_limiter(base_url: str, model: str, ceiling: int) -> AdaptiveLimiter:
    """One limiter per (endpoint, model) in the running event loop, shared by every scheduler."""
    per_loop = _LIMITERS.setdefault(asyncio.get_running_loop(), {})
    limiter = per_loop.get((base_url, model))
    if limiter is None:
        limiter = per_loop[(base_url, model)] = AdaptiveLimiter(ceiling)
    return limiter

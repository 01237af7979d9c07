from __future__ import annotations

import asyncio

from auditor.scoring.limiter import AdaptiveLimiter


async def test_overload_halves_once_per_burst_and_recovers() -> None:
    lim = AdaptiveLimiter(8)
    gens = []
    for _ in range(4):  # four requests in flight when the server starts answering 429
        cm = lim.slot()
        gens.append((cm, await cm.__aenter__()))
    for _, g in gens:
        lim.overload(g)
    assert lim.allowed == 4 and lim.decreases == 1
    for cm, _ in gens:
        await cm.__aexit__(None, None, None)
    async with lim.slot() as g:
        lim.overload(g)
    assert lim.allowed == 2
    for _ in range(200):
        lim.success()
    assert lim.allowed == 8  # additive increase back to the ceiling, never above


async def test_slots_never_exceed_allowed() -> None:
    lim = AdaptiveLimiter(3)
    peak = 0

    async def job(i: int) -> None:
        nonlocal peak
        async with lim.slot() as g:
            peak = max(peak, lim.in_flight)
            await asyncio.sleep(0.001)
            if i == 5:
                lim.overload(g)

    await asyncio.gather(*(job(i) for i in range(30)))
    assert peak <= 3 and lim.in_flight == 0 and lim.lowest == 1.5

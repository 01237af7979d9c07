from __future__ import annotations

import pytest

from auditor.errors import AlignmentError, HTTPStatusError, ResponseFormatError, TransportError
from auditor.scoring.retry import Decision, RetryPolicy, classify


@pytest.mark.parametrize(
    ("exc", "kind", "wait"),
    [
        (HTTPStatusError("slow down", status=429, retry_after=3.0), "rate_limited", 3.0),
        (HTTPStatusError("slow down", status=429), "rate_limited", None),
        (HTTPStatusError("boom", status=500), "transient", None),
        (HTTPStatusError("bad gateway", status=502), "transient", None),
        (HTTPStatusError("unavailable", status=503, retry_after=1.0), "transient", 1.0),
        (HTTPStatusError("timeout", status=408), "transient", None),
        (TransportError("reset"), "transient", None),
        (HTTPStatusError("bad request", status=400), "no", None),
        (HTTPStatusError("unauthorized", status=401), "no", None),
        (HTTPStatusError("not found", status=404), "no", None),
        (HTTPStatusError("unprocessable", status=422), "no", None),
        (ResponseFormatError("garbled"), "garbled", None),
        (AlignmentError("misaligned"), "no", None),
        (ValueError("a bug"), "no", None),
    ],
)
def test_classify(exc: BaseException, kind: str, wait: float | None) -> None:
    d = classify(exc)
    assert (d.kind, d.wait) == (kind, wait)
    assert d.reason == {"no": ""}.get(kind, d.reason) and (kind == "no" or d.reason)  # every retry has a reason


def test_wait_honours_retry_after_and_caps() -> None:
    p = RetryPolicy(base_wait=0.5, max_wait=4.0, max_retry_after=60.0)
    assert p.wait_for(1, Decision("rate_limited", 9.0)) == 9.0
    assert p.wait_for(1, Decision("rate_limited", 600.0)) == 60.0
    assert [p.wait_for(a, Decision("transient")) for a in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]


async def test_policy_retries_transient_then_succeeds() -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise HTTPStatusError("busy", status=503, retry_after=0.0)
        return "ok"

    seen: list[Decision] = []
    assert await RetryPolicy(attempts=5).call(flaky, seen.append) == "ok"
    assert len(calls) == 3 and len(seen) == 2


async def test_policy_never_retries_400_and_gives_up_after_attempts() -> None:
    calls = []

    async def refused() -> str:
        calls.append(1)
        raise HTTPStatusError("bad", status=400)

    with pytest.raises(HTTPStatusError):
        await RetryPolicy(attempts=5).call(refused)
    assert len(calls) == 1

    async def down() -> str:
        calls.append(1)
        raise HTTPStatusError("down", status=502, retry_after=0.0)

    calls.clear()
    with pytest.raises(HTTPStatusError):
        await RetryPolicy(attempts=3).call(down)
    assert len(calls) == 3


async def test_garbled_responses_retried_once_only() -> None:
    calls = []

    async def garbled() -> str:
        calls.append(1)
        raise ResponseFormatError("invalid JSON in response")

    with pytest.raises(ResponseFormatError):
        await RetryPolicy(attempts=6, base_wait=0.0).call(garbled)
    assert len(calls) == 2

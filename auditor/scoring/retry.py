"""Retry decisions from a pure classifier, and the one tenacity policy built on it.

    classify(exc) -> Decision("no" | "transient" | "rate_limited", wait)

- 429: rate limited; honour Retry-After when the server sends one.
- 408, 5xx, timeouts, connection errors and resets: transient.
- A 2xx payload that breaks the dialect's contract (invalid or truncated JSON, fewer logprobs than
  tokens, a null inside): "garbled", retried once, since proxies and overloaded servers do cut
  bodies, but a server that keeps answering that way is not paid again and again.
- A 3xx (redirects are not followed), any other 4xx, alignment failures and bodies over the size cap:
  never retried (the same request would get the same
  answer); the prompt is recorded as failed with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from auditor.errors import (
    AlignmentError,
    HTTPStatusError,
    ResponseFormatError,
    ResponseTooLarge,
    TransportError,
    Unreachable,
)

T = TypeVar("T")
Kind = Literal["no", "transient", "rate_limited", "garbled", "unreachable"]
GARBLED_ATTEMPTS = 2


@dataclass(frozen=True)
class Decision:
    kind: Kind
    wait: float | None = None  # seconds the server asked for (Retry-After)
    reason: str = ""  # what went wrong, for counting retries: timeout, connection, 429, 5xx, 408, garbled

    @property
    def retry(self) -> bool:
        return self.kind != "no"


def classify(exc: BaseException) -> Decision:
    if isinstance(exc, Unreachable):
        return Decision("unreachable", reason="connection")
    if isinstance(exc, TransportError):
        return Decision("transient", reason="timeout" if exc.timeout else "connection")
    if isinstance(exc, HTTPStatusError):
        if exc.status == 429:
            return Decision("rate_limited", exc.retry_after, reason="429")
        if exc.status == 408 or exc.status >= 500:
            return Decision("transient", exc.retry_after, reason="408" if exc.status == 408 else "5xx")
    if isinstance(exc, ResponseFormatError) and not isinstance(exc, AlignmentError | ResponseTooLarge):
        return Decision("garbled", reason="garbled")
    return Decision("no")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_wait: float = 0.5
    max_wait: float = 30.0
    max_retry_after: float = 120.0
    retry_garbled: bool = True  # off while probing dialects: a garbled answer there means "not this dialect"
    # a connection refused / unknown host is retried only where the server has answered before (scoring);
    # at first contact (probe, describe) it is the answer: fail at once, in one line
    retry_unreachable: bool = False

    def wait_for(self, attempt: int, decision: Decision) -> float:
        """Seconds to wait before attempt `attempt + 1`; Retry-After wins when present."""
        if decision.wait is not None:
            return min(decision.wait, self.max_retry_after)
        return float(min(self.max_wait, self.base_wait * 2 ** (attempt - 1)))

    async def call(self, fn: Callable[[], Awaitable[T]], on_retry: Callable[[Decision], None] | None = None) -> T:
        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            decision = classify(exc) if exc else Decision("transient")
            if on_retry is not None:
                on_retry(decision)
            return self.wait_for(state.attempt_number, decision)

        def should_retry(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if exc is None:
                return False
            decision = classify(exc)
            if decision.kind == "garbled":
                return self.retry_garbled and state.attempt_number < GARBLED_ATTEMPTS
            if decision.kind == "unreachable":
                return self.retry_unreachable
            return decision.retry

        retrying = AsyncRetrying(stop=stop_after_attempt(self.attempts), wait=wait, retry=should_retry, reraise=True)
        async for attempt in retrying:
            with attempt:
                return await fn()
        raise AssertionError("unreachable")  # pragma: no cover

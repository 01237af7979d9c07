"""Hard budgets: tokens, requests, money and wall time that a run never passes.

Accounting is reserve-then-settle. Before a request is sent, an upper bound of what it can cost is
reserved (tokens: the server's own count when it can tokenize, else the prompt's UTF-8 byte length
plus an allowance for special tokens; one request). A request is sent only if every limit still holds
with the reservation counted as spent: `spent + reserved + new <= limit`. When the answer arrives the
reservation is settled with the tokens the server reports; a failed attempt stays charged at its
reservation (the server may have billed it), so retries spend from the same budget. Because nothing is
sent without a reservation, concurrency and retries in flight cannot overrun a limit.

Money is tokens times a price (`--price-per-mtok` or a known model's price): a cost limit is a token
limit. Time is a deadline: no request starts after it, and the run cancels what is in flight when it
comes (those reservations stay charged).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditor.errors import BudgetExceeded, UsageError

SPECIAL_TOKEN_ALLOWANCE = 8  # BOS/EOS and friends a server may add to a prompt; generous on purpose


def byte_upper_bound(text: str) -> int:
    """Tokens a prompt can cost at most without asking the server: byte-level BPE and SentencePiece
    with byte fallback never make more tokens than UTF-8 bytes, plus a few special tokens."""
    return len(text.encode("utf-8")) + SPECIAL_TOKEN_ALLOWANCE


@dataclass(frozen=True)
class Limits:
    tokens: int | None = None
    requests: int | None = None
    cost: float | None = None  # USD
    seconds: float | None = None
    price_per_mtok: float | None = None  # USD per million tokens, for cost

    def __post_init__(self) -> None:
        for name in ("tokens", "requests", "cost", "seconds", "price_per_mtok"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                flag = {"price_per_mtok": "price-per-mtok", "seconds": "time"}.get(name, name)
                raise UsageError(f"--max-{flag} must be positive" if name != "price_per_mtok"
                                 else "--price-per-mtok must be positive")  # fmt: skip
        if self.cost is not None and self.price_per_mtok is None:
            raise UsageError(
                "--max-cost needs a price: no known price for this model; give --price-per-mtok (USD per 1M tokens)"
            )

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.tokens, self.requests, self.cost, self.seconds))

    def token_cap(self) -> tuple[int | None, str]:
        """The binding token limit and its name ("tokens" or "cost")."""
        caps: list[tuple[int, str]] = []
        if self.tokens is not None:
            caps.append((self.tokens, "tokens"))
        if self.cost is not None and self.price_per_mtok is not None:
            caps.append((math.floor(self.cost / self.price_per_mtok * 1_000_000), "cost"))
        if not caps:
            return None, "tokens"
        return min(caps)

    def to_json(self) -> dict[str, Any]:
        return {"max_tokens": self.tokens, "max_requests": self.requests, "max_cost": self.cost,
                "max_time_s": self.seconds, "price_per_mtok": self.price_per_mtok}  # fmt: skip


@dataclass
class Hold:
    """A reservation not yet settled."""

    tokens: int
    requests: int
    open: bool = True


@dataclass
class Budget:
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.monotonic
    spent_tokens: int = 0  # settled with the server's count
    charged_tokens: int = 0  # failed or cancelled attempts, charged at their reservation
    reserved_tokens: int = 0
    spent_requests: int = 0
    reserved_requests: int = 0
    over_bound: int = 0  # answers whose reported tokens exceeded the reservation (bound too low)
    _stopped: str | None = field(default=None, init=False)  # the limit that ended the run, once one did
    started: float = field(init=False)
    _event: asyncio.Event | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    # -- limits -------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self.started

    def time_left(self) -> float | None:
        return None if self.limits.seconds is None else self.limits.seconds - self.elapsed()

    def tokens_used(self) -> int:
        """Everything that counts against the token limit right now."""
        return self.spent_tokens + self.charged_tokens + self.reserved_tokens

    def requests_used(self) -> int:
        return self.spent_requests + self.reserved_requests

    def reserve(self, tokens: int, requests: int = 1) -> Hold:
        """Reserve or raise BudgetExceeded (and remember which limit stopped the run)."""
        left = self.time_left()
        if left is not None and left <= 0:
            self._stop("time", f"--max-time {self.limits.seconds:g} s reached")
        cap, name = self.limits.token_cap()
        if cap is not None and self.tokens_used() + tokens > cap:
            self._stop(name, f"the next request could pass the {name} budget ({self.tokens_used()} + up to"
                             f" {tokens} tokens > {cap})")  # fmt: skip
        if self.limits.requests is not None and self.requests_used() + requests > self.limits.requests:
            self._stop("requests", f"--max-requests {self.limits.requests} reached")
        self.reserved_tokens += tokens
        self.reserved_requests += requests
        return Hold(tokens, requests)

    def _stop(self, limit: str, message: str) -> None:
        """Refuse this reservation; the caller decides whether that ends the run (`end`)."""
        raise BudgetExceeded(limit, message)

    @property
    def stopped(self) -> str | None:
        """The limit that ended the run ("tokens", "cost", "requests", "time"), or None."""
        return self._stopped

    def end(self, limit: str) -> None:
        """The run ends on `limit`; the first limit that ends it is the one reported."""
        if self._stopped is None:
            self._stopped = limit

    async def changed(self) -> None:
        """Wait until a reservation is settled, charged or released."""
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()

    def _notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    def take(self, hold: Hold, tokens: int, requests: int = 1) -> Hold:
        """Carve one request's share out of a larger hold (no new reservation)."""
        if not hold.open or tokens > hold.tokens or requests > hold.requests:
            raise ValueError("hold too small")
        hold.tokens -= tokens
        hold.requests -= requests
        return Hold(tokens, requests)

    def settle(self, hold: Hold, tokens: int) -> None:
        """The request was answered and the server counted `tokens`."""
        self._close(hold)
        if tokens > hold.tokens:
            self.over_bound += 1
        self.spent_tokens += tokens
        self.spent_requests += hold.requests

    def charge(self, hold: Hold) -> None:
        """The request failed or was cancelled: charge the reservation in full."""
        self._close(hold)
        self.charged_tokens += hold.tokens
        self.spent_requests += hold.requests

    def release(self, hold: Hold) -> None:
        """Nothing was sent on this hold: give it back."""
        self._close(hold)

    def _close(self, hold: Hold) -> None:
        if not hold.open:
            raise ValueError("hold already settled")
        hold.open = False
        self.reserved_tokens -= hold.tokens
        self.reserved_requests -= hold.requests
        self._notify()

    def close_all_reserved(self) -> None:
        """At the end of a run, in-flight reservations (cancelled requests) count as charged."""
        self.charged_tokens += self.reserved_tokens
        self.spent_requests += self.reserved_requests
        self.reserved_tokens = 0
        self.reserved_requests = 0

    def cost(self, tokens: int) -> float | None:
        return None if self.limits.price_per_mtok is None else tokens * self.limits.price_per_mtok / 1_000_000

    def to_json(self) -> dict[str, Any]:
        total = self.spent_tokens + self.charged_tokens
        return {
            "limits": self.limits.to_json(),
            "stopped_by": self.stopped,
            "tokens_reported": self.spent_tokens,
            "tokens_charged_unconfirmed": self.charged_tokens,
            "tokens_total": total,
            "requests": self.spent_requests,
            "cost": self.cost(total),
            "bound_exceeded": self.over_bound,
        }

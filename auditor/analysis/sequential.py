"""Sequential spot checks: update the dataset test after every item and stop when the verdict is clear.

Model. Item i is scored on K_i orderings. If a share f of the items is leaked and a leaked item puts
its published order on top, while any other item does so with chance 1/K_i, then

    P(top-1 on item i) = f + (1 - f) / K_i.

This is the same chance-corrected "leaked fraction" the fixed-sample report estimates.

Always-valid inference. For every candidate f0 on a grid (0, 0.01, ..., 1) we keep a mixture
likelihood ratio

    M_n(f0) = sum_g w_g prod_{i<=n} P_{f_g}(x_i) / P_{f0}(x_i)     (w uniform over the grid)

which, if f0 is the truth, is a nonnegative martingale with mean 1. By Ville's inequality the chance
that it *ever* reaches 1/alpha is at most alpha, however long we watch and whenever we stop. So

    CS_n = { f0 : M_n(f0) < 1/alpha }

is a confidence sequence: it covers the true f at every n simultaneously with probability >= 1 - alpha.
Peeking after every item is therefore allowed (a fixed-sample binomial test peeked at every item is
not: its false-positive rate grows with the number of looks).

Decisions, checked after each item:
- "leakage": f0 = 0 has left the sequence (M_n(0) >= 1/alpha): the model prefers published orders more
  than chance, at level alpha.
- "no_evidence": every f0 >= tolerance has left (the upper end of CS_n is below `tolerance`): any
  leakage is smaller than the tolerance, at level alpha.
- otherwise go on; when the items run out the result is "undecided" with the current interval.

Items must be independent under the null: the caller feeds one item per option list (items sharing an
option list are not independent) and, by default, leaves out order-sensitive items, whose published
order is natural and would read as leakage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

GRID = np.round(np.linspace(0.0, 1.0, 101), 2)
Decision = Literal["leakage", "no_evidence"]


@dataclass
class SequentialTest:
    alpha: float = 0.05
    tolerance: float = 0.10
    grid: np.ndarray[Any, Any] = field(default_factory=lambda: GRID.copy())
    log_lik: np.ndarray[Any, Any] = field(init=False)
    n: int = 0
    top1: int = 0
    decided_at: int | None = None
    decision: Decision | None = None

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if not 0 < self.tolerance < 1:
            raise ValueError("tolerance must be in (0, 1)")
        self.log_lik = np.zeros_like(self.grid, dtype=float)

    def update(self, n_orderings: int, top1: bool) -> Decision | None:
        """Add one item; returns the decision the first time one is reached (and keeps it after)."""
        chance = 1.0 / n_orderings
        with np.errstate(divide="ignore"):
            p = self.grid + (1 - self.grid) * chance
            self.log_lik += np.log(p) if top1 else np.log1p(-p)
        self.n += 1
        self.top1 += int(top1)
        if self.decision is None:
            self.decision = self._decide()
            if self.decision is not None:
                self.decided_at = self.n
        return self.decision

    def log_e_values(self) -> np.ndarray[Any, Any]:
        """log M_n(f0) for every grid f0 (inf where the data rule f0 out entirely)."""
        finite = self.log_lik[np.isfinite(self.log_lik)]
        top = float(finite.max())
        log_mix = top + float(np.log(np.mean(np.exp(np.where(np.isfinite(self.log_lik), self.log_lik - top, -np.inf)))))
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(self.log_lik), log_mix - self.log_lik, np.inf)

    def in_sequence(self) -> np.ndarray[Any, Any]:
        return np.asarray(self.log_e_values() < np.log(1 / self.alpha))

    def interval(self) -> tuple[float, float]:
        """The confidence sequence's current range, widened to the neighbouring grid points."""
        inside = np.flatnonzero(self.in_sequence())
        if inside.size == 0:  # cannot happen with a true model; report the likeliest point
            best = float(self.grid[int(np.argmax(self.log_lik))])
            return best, best
        step = float(self.grid[1] - self.grid[0])
        low = max(0.0, float(self.grid[inside[0]]) - step) if inside[0] > 0 else 0.0
        high = min(1.0, float(self.grid[inside[-1]]) + step)
        return low, high

    def estimate(self) -> float:
        """The maximum-likelihood leaked fraction on the grid (chance-corrected, unlike the raw top-1 rate)."""
        return float(self.grid[int(np.argmax(self.log_lik))]) if self.n else 0.0

    def e_value_null(self) -> float:
        """M_n(0): evidence against "no leakage beyond chance"; 1/alpha or more decides leakage."""
        return float(np.exp(min(700.0, self.log_e_values()[0])))

    def _decide(self) -> Decision | None:
        inside = self.in_sequence()
        if not inside[0]:
            return "leakage"
        if not inside[self.grid >= self.tolerance - 1e-12].any() and self.interval()[1] <= self.tolerance:
            return "no_evidence"
        return None

    def to_json(self) -> dict[str, Any]:
        low, high = self.interval()
        return {
            "procedure": "mixture likelihood-ratio confidence sequence for the leaked fraction (Ville)",
            "alpha": self.alpha,
            "tolerance": self.tolerance,
            "items_used": self.n,
            "items_top1": self.top1,
            "decision": self.decision or "undecided",
            "decided_at_item": self.decided_at,
            "leaked_fraction_estimate": self.estimate(),
            "leaked_fraction_interval": {"low": low, "high": high},
            "e_value_no_leakage": self.e_value_null(),
        }

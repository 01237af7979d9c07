"""Lift: scenario b's evidence, the one ordering an item's score rose for, against the dataset's other items.

An item leaked in a shuffled order has one ordering the model saw: its score rises above the item's other
orderings by more than a clean item's best ordering does. Per item, with scores s_j (and with references
the deviation in nats d_j = s_j - mean over references of s_j; without, d_j = s_j), the lift is
T = max_j d_j - median_j d_j and the ordering it names is the argmax. In nats, not standardised: a
standardised z is capped near sqrt(K) whatever the rise, and training lifts the orderings that share the
trained one's first options too (a z of 1.1-3.6 on the canaries' shuffled leaks, where clean items' best
reaches 3.0-3.2).

A nats threshold has no distribution-free null per item, so each item's lift is compared with the dataset's
unfamiliar items with as many orderings (the maximum of more orderings is larger: unstratified, 24-ordering
items mixed half and half with 6-ordering ones were flagged at twice alpha_b), those whose familiarity p-value
(auditor/analysis/familiarity.py) is above 0.5:
p_lift = (1 + #{unfamiliar items whose lift is at or above it}) / (n + 1). Null: an item's lift is
exchangeable with the other items' and independent of its familiarity, so the unfamiliar half is a random
sample of the lifts (leaks, being familiar, mostly stay out of it). The rule gates on familiarity and the
lift together: flagged when p_familiar <= LIFT_GATE and p_lift <= alpha_b / LIFT_GATE, the ordering named
not the published one; p_b = LIFT_GATE * p_lift (1 when the gate is not passed) is the size of that test
under the two nulls. Chosen on the seed-0 canary among pre-registered candidates (bench/lift.py), then read
on the held-out seed 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from auditor.analysis.familiarity import pooled_p

LIFT_GATE = 0.25  # with references: p_familiar at or under this, and p_lift at or under alpha_b / LIFT_GATE
LIFT_GATE_NO_REFERENCE = 0.15  # the same without a reference (chosen apart, bench/lift.py)
UNFAMILIAR = 0.5  # the lift's comparison set: items whose p_familiar is above this

NULL_LIFT = (
    "lift exchangeable across items and independent of familiarity: the highest ordering's height in nats above"
    " the item's median (with references: of the deviation from their mean), against the unfamiliar items'"
    f" (p_familiar > {UNFAMILIAR:g}) with as many orderings"
)


def lift(scores: np.ndarray[Any, Any]) -> tuple[int, float]:
    """(index of the highest ordering, its height above the median of the item's orderings)."""
    best = int(np.argmax(scores))
    return best, float(scores[best] - np.median(scores))


def lift_p(
    lifts: Mapping[str, float],
    p_familiar: Mapping[str, float | None],
    min_pool: int = 1,
    groups: Mapping[str, int] | None = None,
) -> dict[str, float | None]:
    """Each item's p_lift against the unfamiliar items' lifts of its group (`groups`: item -> its number of
    orderings; the maximum over more orderings is larger, so a 24-ordering item is compared with 24-ordering
    items only); None for a group with fewer than `min_pool` unfamiliar items (no familiarity p-values, every
    item familiar, or too few for p_lift to reach the level asked, see `min_pool_for`): scenario b then falls
    back to the Gaussian z test for its items."""
    group_of = groups or {}
    out: dict[str, float | None] = {}
    for group in sorted({group_of.get(key, 0) for key in lifts}):
        members = {key: x for key, x in lifts.items() if group_of.get(key, 0) == group}
        pool = [x for key, x in members.items() if math.isfinite(x) and (p_familiar.get(key) or 0.0) > UNFAMILIAR]
        out |= dict(pooled_p(members, pool)) if pool and len(pool) >= min_pool else dict.fromkeys(members)
    return out


def min_pool_for(alpha_b: float, gate: float) -> int:
    """The fewest unfamiliar items with which the gated test can flag at all: gate / (n + 1) <= alpha_b."""
    return max(1, math.ceil(gate / alpha_b - 1 - 1e-9))


def gated_p(p_familiar: float, p_lift: float, gate: float = LIFT_GATE) -> float:
    """P(p_familiar <= gate and p_lift <= observed) under the two nulls: gate * p_lift, 1.0 past the gate."""
    return gate * p_lift if p_familiar <= gate else 1.0

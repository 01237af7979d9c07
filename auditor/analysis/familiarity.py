"""Familiarity: how likely the item's own text is to the audited model, against the dataset's other items.

Rank 1 of the published order has probability 1/K when the orderings are exchangeable, but a clean model's
natural order (ascending numbers, "all of the above" last, a sequence the options read best in) puts the
published order first more often than that, and no rank test on one model can tell the two apart. Leakage
leaves a second trace that natural order does not: training on the item makes its whole text likely. The echo
of the published ordering already carries it, as Min-K% Prob (the mean of the prompt's lowest 20% token
logprobs, auditor.analysis.detector.min_k_prob); with clean references the statistic is the audited model's
Min-K% gain over the references' mean, which removes how hard the text is for any model.

Each item's familiarity p-value compares its statistic with the dataset's no-preference items, those whose
published order ranks in the lower half of their orderings (rank > K/2):
p_f = (1 + #{no-preference items at or above it}) / (n + 1).
Null: the published order's rank is uniform and independent of the item's familiarity, so the no-preference
items are a random half of the items whose statistic is exchangeable with any other item's. Under leakage they
are mostly clean items (leaks rank high), which is what a leaked item is then compared with.

Combined with the rank by the product t = (rank / K) * p_f, whose exact null distribution (rank discrete
uniform on 1..K, p_f uniform, independent) is P(T <= t) = (1 / K) * sum over r of min(1, K t / r).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from auditor.analysis.detector import ItemStats

NULL_FAMILIARITY = (
    "familiarity independent of the rank: the item's Min-K% (with references: its gain over the references'"
    " mean) exchangeable with the no-preference items' (published order ranked in the lower half)"
)


def familiarity_value(v: ItemStats, references: Sequence[Mapping[str, ItemStats]] = ()) -> float:
    """Min-K% of the published ordering, minus the references' mean Min-K% when there are references
    (nan when a value is missing)."""
    if not references:
        return v.min_k
    refs = [ref.get(v.id) for ref in references]
    if any(r is None for r in refs):
        return math.nan
    return v.min_k - float(np.mean([r.min_k for r in refs if r is not None]))


def familiarity_p(
    verdicts: Sequence[ItemStats], references: Sequence[Mapping[str, ItemStats]] = ()
) -> dict[str, float | None]:
    """Each item's familiarity p-value against the no-preference items (1.0 when its value is missing); all None
    when no item is in that set (every published order ranks high: nothing to compare with, and the items are
    then judged on their ranks alone)."""
    values = {v.id: familiarity_value(v, references) for v in verdicts}
    pool = [values[v.id] for v in verdicts if 2 * v.rank_random > v.n_orderings and math.isfinite(values[v.id])]
    return dict(pooled_p(values, pool)) if pool else dict.fromkeys(values)


def pooled_p(values: Mapping[str, float], pool: Sequence[float]) -> dict[str, float]:
    """(1 + #{pool values at or above x}) / (len(pool) + 1) for each value x (1.0 for a nan)."""
    ref = np.sort(np.asarray(pool, dtype=float))
    n = len(ref)
    return {key: (1 + (n - int(np.searchsorted(ref, x, side="left")) if math.isfinite(x) else n)) / (n + 1)
            for key, x in values.items()}  # fmt: skip


def product_p(rank: int, k: int, p_f: float) -> float:
    """P(R/K * U <= rank/K * p_f) for R uniform on 1..K and U uniform on (0, 1), independent."""
    t = rank / k * p_f
    return min(1.0, sum(min(1.0, k * t / r) for r in range(1, k + 1)) / k)

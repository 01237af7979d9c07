"""The dataset verdict: one pre-registered statistic, one permutation null.

Every item contributes t_i(0), a score of its published ordering computed from the item's own K
orderings: t(j) = -log(rank_j / K) + clip(z_j, -Z_CLIP, Z_CLIP), where rank_j is ordering j's rank
(1 = best, ties share the best rank) and z_j its score standardised over the item's K scores. The rank
term carries "published order on top", the z term its margin. With clean reference runs the same is
computed on the audited model's deviation from the references (auditor/analysis/itemtests.py), so
natural-order preference shared by the models cancels.

Null: within each item the published ordering is exchangeable with the others (without references: the
scores; with references: the deviations), independently across items (one item per shared option
list). Then t_i(0) is a uniform draw from the item's own K values, and the null distribution of
T = sum_i t_i(0) is simulated exactly by drawing one ordering per item (seeded Monte Carlo,
p = (1 + #{T* >= T}) / (N + 1), valid for any N). No distributional assumption about the scores, one
test, no minimum over several p-values. The statistic was fixed (committed) before any canary scores
were available to this code; bench/power.py --choose compares the other candidates afterwards, for
information only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Z_CLIP = 4.0
DRAWS = 20_000
_CHUNK = 2_000_000  # random draws per chunk (memory)

# candidates bench/power.py --choose compares (for information); KIND is the pre-registered one
KINDS = {
    "rank+z": "-log(rank/K) + clip(z, -4, 4)",
    "rank": "-log(rank/K)",
    "z": "clip(z, -4, 4)",
    "top1": "1 if on top (ties included) else 0",
}
KIND = "rank+z"
STATISTIC = f"sum over items of {KINDS[KIND]} of the published ordering"


def ordering_stats(values: Sequence[float] | np.ndarray[Any, Any], kind: str = KIND) -> np.ndarray[Any, Any]:
    """t(j) for every ordering j of one item."""
    x = np.asarray(values, dtype=float)
    k = len(x)
    ranks = 1 + (x[None, :] > x[:, None]).sum(axis=1)
    sd = float(x.std(ddof=1)) if k > 1 else 0.0
    z = np.zeros(k) if sd == 0 else np.clip((x - x.mean()) / sd, -Z_CLIP, Z_CLIP)
    if kind == "top1":
        return np.asarray(ranks == 1, dtype=float)
    rank_term = -np.log(ranks / k)
    return np.asarray({"rank+z": rank_term + z, "rank": rank_term, "z": z}[kind])


@dataclass(frozen=True)
class PermutationTest:
    statistic: float
    null_mean: float
    null_sd: float
    p_value: float
    draws: int
    n_items: int
    paired: bool

    @property
    def z(self) -> float:
        return 0.0 if self.null_sd == 0 else (self.statistic - self.null_mean) / self.null_sd

    def to_json(self) -> dict[str, Any]:
        return {"statistic": STATISTIC, "value": self.statistic, "null_mean": self.null_mean,
                "null_sd": self.null_sd, "z": self.z, "p_value": self.p_value, "draws": self.draws,
                "n_items": self.n_items,
                "null": ("permutation: the published ordering exchangeable with the others, per item, on the"
                         " deviation from the reference(s)" if self.paired else
                         "permutation: the published ordering exchangeable with the others, per item")}  # fmt: skip


def permutation_test(
    per_item: Sequence[np.ndarray[Any, Any]],
    *,
    paired: bool = False,
    draws: int = DRAWS,
    seed: int = 0,
    kind: str = KIND,
) -> PermutationTest:
    """`per_item[i]` holds item i's values (scores or deviations), published ordering first."""
    stats = [ordering_stats(v, kind) for v in per_item]
    observed = float(sum(t[0] for t in stats))
    mean = float(sum(t.mean() for t in stats))
    var = float(sum(t.var() for t in stats))
    if not stats or var == 0:
        return PermutationTest(observed, mean, math.sqrt(var), 1.0, 0, len(stats), paired)
    by_k: dict[int, list[np.ndarray[Any, Any]]] = defaultdict(list)
    for t in stats:
        by_k[len(t)].append(t)
    rng = np.random.default_rng([seed, 29])
    totals = np.zeros(draws)
    for k, rows in sorted(by_k.items()):
        table = np.asarray(rows)  # n_k x k
        step = max(1, _CHUNK // len(rows))
        for start in range(0, draws, step):
            m = min(step, draws - start)
            idx = rng.integers(0, k, size=(m, len(rows)))
            totals[start : start + m] += np.take_along_axis(table.T, idx, axis=0).sum(axis=1)
    tol = 1e-9 * max(1.0, abs(observed))
    exceed = int(np.sum(totals >= observed - tol))
    return PermutationTest(observed, mean, math.sqrt(var), (1 + exceed) / (draws + 1), draws, len(stats), paired)

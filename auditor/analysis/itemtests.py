"""Per-item p-values, each from a stated null, and the default item rule built on them.

Scenario a (leaked in the published order):
- "exchangeable" (no reference): the K orderings are interchangeable, so the rank of the published order,
  ties broken at random (seeded), is uniform on 1..K whatever the score distribution:
  p_exchangeable = rank_random / K. Exact; its floor is 1/K (4.2% for 24 orderings). Alone it is the paper's
  "rank 1", which a clean model's natural order passes more often than 1/K (6% of the canaries' clean items).
- familiarity (auditor/analysis/familiarity.py, given by `decide_all` over the whole dataset): the item's
  Min-K% (with references: its gain over the references' mean) against the dataset's no-preference items
  (published order in the lower half of its ranks), p_familiar. Its null: familiarity independent of the rank.
- The default without a reference: rank 1 (p_exchangeable <= alpha_a) AND p_familiar <= FAMILIARITY_GATE
  (0.5): size alpha_a / 2 under the two nulls together. With references: p_a = P(rank/K * p_familiar <=
  observed) under the two nulls (familiarity.product_p), flagged at alpha_a. Both chosen on the seed-0
  canary's 400 items among pre-registered candidates (bench/familiarity.py), then read on the held-out
  seed 1 (368 items scored): without a reference 0.59 of the published-order leaks at 2.7% of clean items,
  where rank 1 alone has 0.63 at 6.0%; with the base model as reference 0.70 at 0.5%.
- "paired" (reported, `p_paired`; the default with references before familiarity): the audited model's
  deviation from the references in nats, d_j = s(audited)_j - mean over references of s(reference)_j, is
  exchangeable across orderings; p_paired = rank of d_0 among the d_j / K, ties at random. The previous
  default asked max(p_exchangeable, p_paired) <= alpha_a: 0.55 at 2.7% on seed 1. Nats, not standardised
  scores (the first version): standardising caps the published order's z near sqrt(K) whatever the lift.
  In simulation (bench/nulls.py) a reference expressing natural order at half the audited model's scale
  let 7% of clean items through it.
- Without `p_familiar` (`decide` on one item, outside a dataset) scenario a is judged on the ranks alone,
  as before: max(p_exchangeable, p_paired) <= alpha_a.

Scenario b (leaked in another order, which the flag names): the default (`decide_all`, a whole dataset) is
the lift (auditor/analysis/lift.py): the highest ordering's height in nats above the item's median (on the
deviation from the references' mean when there are references), p_lift against the dataset's unfamiliar
items, gated on familiarity: p_b = q * p_lift when p_familiar <= q (q = 0.25 with references, 0.15 without),
the ordering named the highest one, not the published order.
Without those p-values (`decide` on one item, or fewer unfamiliar items than q / alpha_b - 1 to compare with:
19 with references, 7 without, at the default alpha; p_lift could not reach alpha_b / q) the rule before: the
best non-published ordering stands out from the others by its z-score (`outlier_score`, on d with
references). The null is exchangeable Gaussian scores (simulated, seeded, per K): P(best is not the
published order and its z >= observed). With references the best ordering must also be the best of the
audited scores, and the p-value is the larger of the two (intersection-union again). It flagged none of the
canaries' shuffled leaks: their z is 1.1-3.6, where clean items' best ordering reaches 3.0-3.2.

Levels (`levels`): the item's false-positive budget `alpha` is split over the two scenarios. With the
dataset's p-values and the lift: 3/4 to a's product test and 1/4 to the lift with references; without, a's
rank-1-and-familiar test has size 5/6 * 1/2 of alpha and the lift is given the same (1/48 at 0.05). On one
item alone and for the z test: 5/6 and 1/6 (with 24 orderings exactly 1/24 for a: rank 1). An item both
tests flag is named b when the ordering b names begins with another option than the published order, else a:
a trained order lifts the orderings that share its first option, so a published-order leak's highest
deviation is often a sibling of the published order, a shuffled leak's seldom.
Chosen in two steps on canaries: the lift and its gates on seed 0 (held-out seed 1: 0.26 of shuffled leaks
named right with the base as reference, 0.17 without, at 0 of 184 clean items); the levels and the
precedence on seeds 0 and 1 together, then read once on the seed-2 canary (docs/results.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from auditor.analysis.detector import ItemStats
from auditor.analysis.familiarity import NULL_FAMILIARITY, product_p
from auditor.analysis.lift import LIFT_GATE, LIFT_GATE_NO_REFERENCE, NULL_LIFT, gated_p

FAMILIARITY_GATE = 0.5  # no reference: rank 1 is flagged only when p_familiar <= this (size alpha_a / 2)
ALPHA_B_SHARE = 1 / 6  # of the item-level alpha; the rest goes to scenario a (0.05 * 5/6 = 1/24)
LIFT_SHARE = 1 / 4  # with references and the lift test: b's share (a's product test is continuous: 3/4 of alpha)
_SIM = 100_000
_SIM_CHUNK = 2_048  # rows of the simulation drawn at a time (_gaussian_b_table)
_EPS = 1e-9  # p <= alpha compares exact fractions computed in floating point (e.g. 1/24 vs 0.05 * 5/6)

NULL_EXCHANGEABLE = "exchangeable orderings: rank of the published order uniform on 1..K (exact)"
NULL_PAIRED = (
    "paired with the reference(s): the audited model's deviation in nats from the references' mean score is"
    " exchangeable across orderings (natural-order preference shared by the models)"
)
NULL_GAUSSIAN_B = "exchangeable Gaussian scores, simulated per K (seeded): z of the best non-published ordering"


def standardised(scores: Sequence[float] | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    x = np.asarray(scores, dtype=float)
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return np.zeros_like(x) if sd == 0 else (x - x.mean()) / sd


def random_rank(values: np.ndarray[Any, Any], index: int, key: str) -> int:
    """1 + number of values strictly above values[index], plus a seeded uniform share of the ties."""
    above = int(np.sum(values > values[index]))
    ties = int(np.sum(values == values[index])) - 1
    if ties == 0:
        return above + 1
    digest = hashlib.sha256(key.encode()).digest()
    return above + 1 + int(np.random.default_rng(int.from_bytes(digest[:8], "little")).integers(0, ties + 1))


def reference_means(
    v: ItemStats, refs: Sequence[Mapping[str, ItemStats]]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    """The mean over references of each reference's standardised scores and of its scores in nats, both in
    v's ordering order (one pass); None when a reference lacks the item or one of its orderings (then no
    paired test for it)."""
    z_rows, raw_rows = [], []
    for ref in refs:
        r = ref.get(v.id)
        if r is None:
            return None
        pos = {tuple(p): i for i, p in enumerate(r.orderings)}
        idx = [pos.get(tuple(p)) for p in v.orderings]
        if any(i is None for i in idx):
            return None
        order = [i for i in idx if i is not None]
        z_rows.append(standardised(r.scores)[order])
        raw_rows.append(np.asarray(r.scores, dtype=float)[order])
    if not z_rows:
        return None
    return np.mean(np.asarray(z_rows), axis=0), np.mean(np.asarray(raw_rows), axis=0)


def reference_scores(
    v: ItemStats, refs: Sequence[Mapping[str, ItemStats]], *, raw: bool = False
) -> np.ndarray[Any, Any] | None:
    """`reference_means`' standardised part (`raw`: the part in nats)."""
    means = reference_means(v, refs)
    return None if means is None else means[1 if raw else 0]


def deviation(v: ItemStats, ref: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(standardised(v.scores) - ref)


def outlier_z(values: np.ndarray[Any, Any]) -> tuple[int, float]:
    """(index of the best, its z against the others); z = -inf when the best is the published order."""
    best = int(np.argmax(values))
    rest = np.delete(values, best)
    sd = float(rest.std(ddof=1)) if len(rest) > 1 else 0.0
    z = 0.0 if sd == 0 else (float(values[best]) - float(rest.mean())) / sd
    return best, (-np.inf if best == 0 else z)


@lru_cache(maxsize=16)
def _gaussian_b_table(k: int) -> np.ndarray[Any, Any]:
    """Sorted z of the best ordering under exchangeable Gaussian scores (-inf when the published one wins).

    Drawn and reduced `_SIM_CHUNK` rows at a time, which keep in the CPU's cache (one (_SIM, k) array
    was ~20 MB per temporary): the generator's stream is the same whatever the sizes it is drawn in, and
    each row's z is computed from that row alone, so the table is the same, bit for bit."""
    rng = np.random.default_rng([k, 17])
    z = np.empty(_SIM)
    for start in range(0, _SIM, _SIM_CHUNK):
        x = rng.normal(size=(min(_SIM_CHUNK, _SIM - start), k))
        published_best = x.argmax(axis=1) == 0
        x.sort(axis=1)
        others = x[:, :-1]
        part = (x[:, -1] - others.mean(axis=1)) / others.std(axis=1, ddof=1)
        part[published_best] = -np.inf
        z[start : start + len(x)] = part
    z.sort()
    return z


def p_gaussian_b(z: float, k: int) -> float:
    """P(best is not the published order and its z >= z) under exchangeable Gaussian scores (Monte Carlo,
    (1 + count) / (N + 1), so never 0)."""
    if not np.isfinite(z) or k < 3:
        return 1.0
    table = _gaussian_b_table(k)
    count = len(table) - int(np.searchsorted(table, z, side="left"))
    return (1 + count) / (len(table) + 1)


@dataclass(frozen=True)
class ItemTest:
    p_exchangeable: float
    p_paired: float | None  # None without a usable reference
    p_a: float
    p_b: float
    b_ordering: int  # index of the ordering scenario b names (-1: none)
    flagged: bool
    scenario: str | None
    p_familiar: float | None = None  # None: judged on the orderings alone
    p_lift: float | None = None  # None: scenario b by the Gaussian z test

    def to_json(self) -> dict[str, Any]:
        return {"p_exchangeable": self.p_exchangeable, "p_paired": self.p_paired, "p_familiar": self.p_familiar,
                "p_lift": self.p_lift, "p_a": self.p_a, "p_b": self.p_b,
                "b_ordering_index": self.b_ordering}  # fmt: skip


def levels(alpha: float, *, paired: bool, familiar: bool, lifted: bool) -> tuple[float, float]:
    """(alpha_a, alpha_b): the item-level alpha split over the two scenarios' tests.

    On one item alone (no familiarity) and for the z test: 5/6 and 1/6 (rank 1 of 24 is exactly 5/6 of
    0.05). With the dataset's p-values and the lift test: with references a's product test takes 3/4 and
    the lift 1/4; without, a's test (rank 1 and p_familiar <= FAMILIARITY_GATE) has size 5/6 * 1/2 of alpha
    and the lift is given the same, 5/12 of alpha (1/48 at 0.05; a and b together 5/6). Either way the
    lift's level stays under 2.5% at the default alpha."""
    alpha_a = alpha * (1 - (LIFT_SHARE if paired and familiar else ALPHA_B_SHARE))
    if not lifted:
        return alpha_a, alpha * ALPHA_B_SHARE
    return alpha_a, alpha * LIFT_SHARE if paired else alpha_a * FAMILIARITY_GATE


def item_test(
    v: ItemStats,
    ref: np.ndarray[Any, Any] | None,
    alpha: float,
    seed: int = 0,
    raw_ref: np.ndarray[Any, Any] | None = None,
    p_familiar: float | None = None,
    lift: tuple[int, float] | None = None,
) -> ItemTest:
    """`ref`: the references' mean standardised scores (scenario b's outlier test); `raw_ref`: their mean
    scores in nats (the paired rank; without it the paired rank uses `ref`, the first version); `lift`:
    (the highest ordering, its p_lift) from `decide_all`, which with `p_familiar` decides scenario b."""
    k = v.n_orderings
    lifted = lift is not None and p_familiar is not None
    alpha_a, alpha_b = levels(alpha, paired=ref is not None, familiar=p_familiar is not None, lifted=lifted)
    p_ex = v.rank_random / k
    s = np.asarray(v.scores, dtype=float)
    best_s, z_s = outlier_z(s)
    p_b = p_gaussian_b(z_s, k)
    p_pair: float | None = None
    if ref is not None:
        d = deviation(v, ref)
        d_rank = d if raw_ref is None else np.asarray(v.scores, dtype=float) - raw_ref
        p_pair = random_rank(d_rank, 0, f"{seed}\x00paired\x00{v.id}") / k
        best_d, z_d = outlier_z(d)
        p_b = max(p_b, p_gaussian_b(z_d, k)) if best_d == best_s else 1.0
    p_a = p_ex if p_pair is None else max(p_ex, p_pair)
    flag_a = p_a <= alpha_a * (1 + _EPS)
    if p_familiar is not None and ref is None:  # no reference: rank 1 and familiar (the gate)
        flag_a = flag_a and p_familiar <= FAMILIARITY_GATE * (1 + _EPS)
    elif p_familiar is not None:  # references: the rank and the Min-K% gain combined, one p-value
        p_a = product_p(v.rank_random, k, p_familiar)
        flag_a = p_a <= alpha_a * (1 + _EPS)
    p_lift: float | None = None
    if lift is not None and p_familiar is not None:  # the lift, gated on familiarity
        best_s, p_lift = lift
        gate = LIFT_GATE if ref is not None else LIFT_GATE_NO_REFERENCE
        p_b = gated_p(p_familiar, p_lift, gate) if best_s != 0 else 1.0
    flag_b = p_b <= alpha_b * (1 + _EPS)
    if flag_a and not (flag_b and p_lift is not None and v.orderings[best_s][0] != v.orderings[0][0]):
        return ItemTest(p_ex, p_pair, p_a, p_b, -1, True, "a", p_familiar, p_lift)
    if flag_b:
        return ItemTest(p_ex, p_pair, p_a, p_b, best_s, True, "b", p_familiar, p_lift)
    return ItemTest(p_ex, p_pair, p_a, p_b, best_s if best_s != 0 else -1, False, None, p_familiar, p_lift)


def null_description(alpha: float, paired: bool, n_refs: int) -> dict[str, Any]:
    """What report.json says about where each threshold comes from."""
    alpha_a, alpha_b = levels(alpha, paired=paired, familiar=True, lifted=True)
    size_a = alpha_a if paired else alpha_a * FAMILIARITY_GATE  # the product test is exact; the gate halves rank 1
    gate = LIFT_GATE if paired else LIFT_GATE_NO_REFERENCE
    return {
        "alpha": alpha,
        "scenario_a": {
            "alpha": alpha_a,
            "size": size_a,
            "p_value": (
                "P(rank/K * p_familiar <= observed): the published order's rank combined with its familiarity"
                " (Min-K% gain over the references' mean), exact under both nulls"
                if paired
                else f"p_exchangeable, flagged only when p_familiar <= {FAMILIARITY_GATE:g} as well"
                f" (size {size_a:.4g} under both nulls)"
            ),
            "nulls": [NULL_EXCHANGEABLE, NULL_FAMILIARITY],
            "references": n_refs,
        },
        "scenario_b": {
            "alpha": alpha_b,
            "alpha_fallback": levels(alpha, paired=paired, familiar=True, lifted=False)[1],
            "p_value": f"{gate:g} * p_lift when p_familiar <= {gate:g}: the highest ordering's lift in nats above the"
            " item's median" + (" deviation from the references' mean" if paired else "") + ", against the"
            " unfamiliar items'; with too few of them to reach alpha_b (gate / alpha_b - 1), the z of the best"
            " non-published ordering" + (" (audited and deviation: larger p)" * paired) + " at alpha_fallback."
            " An item both scenarios' tests flag is named under b when the ordering b names begins with another"
            " option than the published order (a trained order lifts the orderings that share its first option)",
            "nulls": [NULL_LIFT, NULL_FAMILIARITY, NULL_GAUSSIAN_B, *([NULL_PAIRED] if paired else [])],
        },
    }

"""Decisions: which items to flag, and what to say about the whole dataset, with the error rates stated.

Item level (the default, `flagged`), two scenarios:
- a, leaked in the published order: the published order scores highest AND stands out from the other
  orderings by at least `threshold_a` standard deviations (`z_published`);
- b, leaked in some other order: another ordering scores highest and stands out from the rest by at
  least `threshold_b` standard deviations (`outlier_score`).
The thresholds come from a null distribution, chosen so that an item without leakage is flagged with
probability `alpha` (half for each scenario):
- "exchangeable" (no control): orderings are interchangeable and their scores roughly normal; the
  thresholds are simulated (seeded) for each K among the items (one pair per option count). It ignores
  natural order, so it is optimistic for items that read well only in their published order: those are
  reported separately.
- "control": the statistics of a clean reference (`--control-run`: the same items on a model known not
  to have seen them, or clean items on the same model) are the null; thresholds are its quantiles.
Items with fewer than `MIN_FLAG_K` orderings (two options) are never flagged: with one other ordering
there is no spread to stand out from, and "which of two wins" has p = 1/2 > alpha.

Dataset level: a top-1 count test (exact binomial / Poisson-binomial against 1/K), a rank-sum test
that uses every item's rank, a chance-corrected leaked fraction with a 95% interval, per-subject tests
with Benjamini-Hochberg correction, and with a control, a one-sided Fisher test of the audited top-1
rate against the control's. Items that share one option list are counted once (a seeded
representative), since they leak through each other.

Verdicts (`Verdict`): "leakage" (p < DATASET_ALPHA), "no_evidence", and two that decide nothing (their
own exit code in the CLI): "nothing_scored" (no item has scores) and "too_few_scored" (even if every unit
had the published order on top, the test could not reach DATASET_ALPHA: "no evidence" would only say
that too little was scored; items whose scores are degenerate count as not scored here).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from auditor.analysis.detector import ItemStats
from auditor.analysis.stats import (
    benjamini_hochberg,
    fisher_greater,
    leaked_fraction,
    poisson_binomial_sf,
    rank_sum_p_value,
    wilcoxon_greater,
)
from auditor.input.sensitivity import representative

DEFAULT_ALPHA = 0.05  # item-level false-positive rate, split evenly over the two scenarios
DATASET_ALPHA = 1e-3  # what it takes to say "evidence of leakage" about a whole dataset
MIN_FLAG_K = 3  # fewer orderings than this: an item is never flagged (see the module docstring)
_SIMULATIONS = 20_000


@dataclass(frozen=True)
class Null:
    kind: str  # "exchangeable" | "control"
    threshold_a: float  # for the largest K (exchangeable) or every K (control)
    threshold_b: float
    alpha: float
    control_top1: int = 0
    control_n: int = 0
    source: str = ""
    control_z: dict[str, float] = field(default_factory=dict)  # item id -> the control's z_published
    by_k: dict[int, tuple[float, float]] = field(default_factory=dict)  # exchangeable: K -> (a, b)

    def thresholds(self, k: int) -> tuple[float, float]:
        """Scenario a and b thresholds for an item with K orderings (infinite: never flagged)."""
        if k < MIN_FLAG_K:
            return math.inf, math.inf
        return self.by_k.get(k, (self.threshold_a, self.threshold_b))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "alpha": self.alpha, "threshold_a": _finite(self.threshold_a),
                               "threshold_b": _finite(self.threshold_b)}  # fmt: skip
        if len(self.by_k) > 1 or any(k < MIN_FLAG_K for k in self.by_k):
            out["thresholds_by_k"] = {str(k): {"a": _finite(self.thresholds(k)[0]), "b": _finite(self.thresholds(k)[1])}
                                      for k in sorted(self.by_k)}  # fmt: skip
            out["never_flagged_below_k"] = MIN_FLAG_K
        # control_z stays out: the control run's own report has it
        if self.kind == "control":
            out |= {"source": self.source, "control_top1": self.control_top1, "control_n": self.control_n}
        return out


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no infinity: null means "never flagged"


def _stats_of(scores: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Per row: published on top?, z of the published order, outlier score of the best and whether best != 0."""
    pub = scores[:, 0]
    rest = scores[:, 1:]
    top = pub >= rest.max(axis=1)
    z_pub = (pub - rest.mean(axis=1)) / rest.std(axis=1, ddof=1)
    best = scores.argmax(axis=1)
    order = np.sort(scores, axis=1)
    top_val, others = order[:, -1], order[:, :-1]
    z_best = (top_val - others.mean(axis=1)) / others.std(axis=1, ddof=1)
    z_best = np.where(best != 0, z_best, -np.inf)
    return top, np.where(top, z_pub, -np.inf), z_best


def _threshold(values: np.ndarray[Any, Any], rate: float) -> float:
    """The smallest t with mean(values >= t) <= rate."""
    finite = np.sort(values[np.isfinite(values)])[::-1]
    k = int(np.floor(rate * len(values)))
    if k >= len(finite):
        return float(finite[-1]) if len(finite) else 0.0
    return float(np.nextafter(finite[k], np.inf))


def exchangeable_null(k: int | Sequence[int], alpha: float = DEFAULT_ALPHA, seed: int = 0) -> Null:
    """Thresholds simulated for each K (orderings per item) in `k`; K below MIN_FLAG_K is never flagged."""
    ks = sorted({k} if isinstance(k, int) else set(k)) or [24]
    by_k: dict[int, tuple[float, float]] = {}
    for K in ks:
        if K < MIN_FLAG_K:
            by_k[K] = (math.inf, math.inf)
            continue
        rng = np.random.default_rng(seed)
        _, z_a, z_b = _stats_of(rng.normal(size=(_SIMULATIONS, K)))
        by_k[K] = (_threshold(z_a, alpha / 2), _threshold(z_b, alpha / 2))
    top_a, top_b = by_k[ks[-1]]
    return Null("exchangeable", top_a, top_b, alpha, by_k=by_k)


def control_null(control: Sequence[ItemStats], alpha: float = DEFAULT_ALPHA, source: str = "") -> Null:
    z_a = np.array([v.z_published if v.rank == 1 else -np.inf for v in control])
    z_b = np.array([v.outlier_score if v.best_index != 0 else -np.inf for v in control])
    return Null("control", _threshold(z_a, alpha / 2), _threshold(z_b, alpha / 2), alpha,
                control_top1=sum(v.rank == 1 for v in control), control_n=len(control), source=source,
                control_z={v.id: v.z_published for v in control})  # fmt: skip


@dataclass(frozen=True)
class ItemDecision:
    flagged: bool
    scenario: str | None  # "a" | "b" | None


def decide(v: ItemStats, null: Null) -> ItemDecision:
    threshold_a, threshold_b = null.thresholds(v.n_orderings)
    if v.rank == 1 and v.z_published >= threshold_a:
        return ItemDecision(True, "a")
    if v.best_index != 0 and v.outlier_score >= threshold_b:
        return ItemDecision(True, "b")
    return ItemDecision(False, None)


def representatives(verdicts: Sequence[ItemStats], groups: dict[str, str], seed: int = 0) -> list[ItemStats]:
    """One item per shared option list (a seeded pick), every other item as is."""
    by_group: dict[str, list[ItemStats]] = defaultdict(list)
    singles: list[ItemStats] = []
    for v in verdicts:
        (by_group[groups[v.id]] if v.id in groups else singles).append(v)
    chosen = list(singles)
    for key, members in sorted(by_group.items()):
        chosen.append(members[representative(key, len(members), seed)])
    return chosen


class Verdict(StrEnum):
    """The dataset decision."""

    LEAKAGE = "leakage"
    NO_EVIDENCE = "no_evidence"
    TOO_FEW_SCORED = "too_few_scored"  # no outcome on the units scored could have shown leakage
    NOTHING_SCORED = "nothing_scored"  # no item has scores

    @property
    def decided(self) -> bool:
        """False for the verdicts that decide nothing (their own exit code in the CLI)."""
        return self in (Verdict.LEAKAGE, Verdict.NO_EVIDENCE)


class VerdictTest(StrEnum):
    """The test whose p-value decided the verdict."""

    RANK_SUM = "rank_sum"  # ranks of the published order over every unit (no control)
    TOP1 = "top1_binomial"  # top-1 count over units against 1/K (no control)
    CONTROL_WILCOXON = "control_wilcoxon"  # paired z_published against the control's, same items
    CONTROL_FISHER = "control_fisher"  # top-1 rate against the control's
    SEQUENTIAL = "sequential"  # the always-valid confidence sequence (p = 1 / e-value)

    @property
    def description(self) -> str:
        return _TEST_TEXT[self]


_TEST_TEXT = {
    VerdictTest.RANK_SUM: "rank-sum test over every unit's rank",
    VerdictTest.TOP1: "top-1 count over units (exact binomial, one-sided)",
    VerdictTest.CONTROL_WILCOXON: "paired Wilcoxon signed-rank test against the control, on the items scored by both",
    VerdictTest.CONTROL_FISHER: "Fisher test of the top-1 rate against the control's",
    VerdictTest.SEQUENTIAL: "sequential test (always-valid; p = 1 / e-value)",
}


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class SubjectRow:
    subject: str
    n: int
    top1: int
    p_value: float
    p_adjusted_bh: float
    chance: float
    leaked_fraction: Interval


@dataclass(frozen=True)
class OrderNote:
    """What the verdict's sentence says about order-sensitive items (counted before it is written)."""

    sensitive_winners: int = 0  # top-1 units whose options read naturally in the published order
    excluded: int | None = None  # order-sensitive items left out (None: --exclude-order-sensitive not given)


@dataclass(frozen=True)
class DatasetSummary:
    """The dataset decision and the tests behind it, over units (one per shared option list)."""

    n_units: int
    top1: int
    chance: float
    p_binomial: float
    p_rank_sum: float
    fraction: tuple[float, float, float]
    p_control: float | None
    verdict: Verdict
    test: VerdictTest
    p_verdict: float
    sentence: str
    subjects: tuple[SubjectRow, ...] = ()


def summarize(
    units: Sequence[ItemStats], null: Null, note: OrderNote = OrderNote(), *, n_degenerate: int = 0
) -> DatasetSummary:
    """The dataset verdict over `units`; `note`: what to say about order-sensitive items; `n_degenerate`:
    items scored but left out (degenerate scores)."""
    n = len(units)
    top1 = sum(v.rank_random == 1 for v in units)
    chances = [1.0 / v.n_orderings for v in units]
    chance = float(np.mean(chances)) if n else 0.0
    p_bin = poisson_binomial_sf(top1, chances) if n else 1.0
    p_rank = rank_sum_p_value([v.rank_random for v in units], [v.n_orderings for v in units])
    frac = leaked_fraction(top1, n, chance)
    p_ctrl, control_test = _versus_control(units, top1, null)
    if p_ctrl is not None and control_test is not None:
        p_key, test = p_ctrl, control_test
    else:  # the smaller of the two; a tie goes to the rank-sum test
        p_key, test = (p_bin, VerdictTest.TOP1) if p_bin < p_rank else (p_rank, VerdictTest.RANK_SUM)
    leak = p_key < DATASET_ALPHA
    verdict = Verdict.LEAKAGE if leak else Verdict.NO_EVIDENCE
    sentence = _sentence(leak, p_key, frac, null, top1, n, chance)
    if control_test is not None:
        sentence += f" [{_CONTROL_TEXT[control_test].format(n=_paired(units, null))}]"
    best = best_case_p(units, null)
    if n == 0 and n_degenerate == 0:
        verdict = Verdict.NOTHING_SCORED
        sentence = "nothing was scored: no item has scores to judge (see the failures)"
    elif not leak and best >= DATASET_ALPHA:
        verdict = Verdict.TOO_FEW_SCORED
        sentence = (f"too few items scored to decide: with {n} unit(s), even the published order on top in every"
                    f" one would give p = {best:.2g}, not below {DATASET_ALPHA:g}")  # fmt: skip
        if n_degenerate:
            sentence += (f"; {n_degenerate} item(s) scored but left out because their scores are degenerate (every"
                         " ordering scored the same, or every token the same logprob): the server's logprobs do not"
                         " depend on the order of the options")  # fmt: skip
    sentence += _order_text(note, top1)
    return DatasetSummary(n, top1, chance, p_bin, p_rank, frac, p_ctrl, verdict, test, p_key, sentence,
                          _subjects(units))  # fmt: skip


_CONTROL_TEXT = {
    VerdictTest.CONTROL_WILCOXON: "paired Wilcoxon signed-rank test on {n} items scored by both",
    VerdictTest.CONTROL_FISHER: "Fisher test of top-1 rates",
}


def _order_text(note: OrderNote, winners: int) -> str:
    text = ""
    if winners and (note.sensitive_winners or note.excluded is not None):
        text = (f"; {note.sensitive_winners} of those {winners} read naturally in their published order"
                " (order-sensitive)" + (", excluded" if note.excluded is not None
                                        else "; --exclude-order-sensitive drops them"))  # fmt: skip
    if note.excluded is not None:
        text += f"; {note.excluded} order-sensitive item(s) excluded in all"
    return text


def best_case_p(units: Sequence[ItemStats], null: Null) -> float:
    """The smallest p-value the verdict's test could give on these units (every one with the published order
    on top): at or above DATASET_ALPHA, no outcome could show leakage."""
    if not units:
        return 1.0
    if null.kind == "control":
        paired = sum(v.id in null.control_z for v in units)
        if paired >= PAIRED_MIN:
            return wilcoxon_greater([1.0] * paired)
        return fisher_greater(len(units), len(units), null.control_top1, null.control_n)
    ks = [v.n_orderings for v in units]
    return min(poisson_binomial_sf(len(units), [1.0 / k for k in ks]), rank_sum_p_value([1] * len(units), ks))


PAIRED_MIN = 10


def _paired(units: Sequence[ItemStats], null: Null) -> int:
    return sum(v.id in null.control_z for v in units)


def _versus_control(units: Sequence[ItemStats], top1: int, null: Null) -> tuple[float | None, VerdictTest | None]:
    """Paired Wilcoxon on z_published when the control scored the same items, else Fisher on top-1 rates."""
    if null.kind != "control":
        return None, None
    pairs = [v.z_published - null.control_z[v.id] for v in units if v.id in null.control_z]
    if len(pairs) >= PAIRED_MIN:
        return wilcoxon_greater(pairs), VerdictTest.CONTROL_WILCOXON
    return fisher_greater(top1, len(units), null.control_top1, null.control_n), VerdictTest.CONTROL_FISHER


def _sentence(
    leak: bool, p: float, frac: tuple[float, float, float], null: Null, top1: int, n: int, chance: float
) -> str:
    est, lo, hi = frac
    if null.kind == "control":
        ctrl = null.control_top1 / max(1, null.control_n)
        head = (
            f"evidence of leakage compared with the control (p={p:.2g}; control top-1 rate {ctrl:.1%})"
            if leak
            else f"no evidence of leakage beyond the control (p={p:.2g}; control top-1 rate {ctrl:.1%})"
        )
    elif leak:
        head = (
            f"the published order is preferred more than chance (p={p:.2g}): leakage, or natural order "
            "and pretraining exposure, which cannot be told apart without a control (--control-run)"
        )
    else:
        head = (
            f"no evidence that the published order is preferred (p={p:.2g}); without a control run natural "
            "order and pretraining exposure cannot be told apart, so a weak preference may be either"
        )
    return (f"{head}; published order on top for {top1} of {n} units ({top1 / max(1, n):.1%}, chance "
            f"{chance:.1%}); estimated leaked fraction {est:.1%} (95% CI {lo:.1%}-{hi:.1%})")  # fmt: skip


def _subjects(units: Sequence[ItemStats]) -> tuple[SubjectRow, ...]:
    by: dict[str, list[ItemStats]] = defaultdict(list)
    for v in units:
        by[v.subject].append(v)
    names = sorted(by)
    ps = [poisson_binomial_sf(sum(v.rank_random == 1 for v in by[s]), [1 / v.n_orderings for v in by[s]])
          for s in names]  # fmt: skip
    adjusted = benjamini_hochberg(ps)
    rows: list[SubjectRow] = []
    for s, p, q in zip(names, ps, adjusted, strict=True):
        top1 = sum(v.rank_random == 1 for v in by[s])
        chance = float(np.mean([1 / v.n_orderings for v in by[s]]))
        rows.append(SubjectRow(s, len(by[s]), top1, p, q, chance, Interval(*leaked_fraction(top1, len(by[s]), chance))))
    return tuple(rows)

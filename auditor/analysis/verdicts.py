"""Decisions: which items to flag, and what to say about the whole dataset, with the error rates stated.

Item level (`flagged`, `decide_all`): per-item p-values, each from a stated null (auditor/analysis/itemtests.py):
scenario a (published order) from the exact exchangeable null (rank / K) and the item's familiarity against
the dataset's no-preference items (auditor/analysis/familiarity.py): rank 1 and familiar without a reference,
rank and Min-K% gain combined with clean references (`--control-run`, repeatable); scenario b (another order,
named) from the highest ordering's lift against the unfamiliar items', gated on familiarity
(auditor/analysis/lift.py). `alpha` is split between them by `itemtests.levels`.

Dataset level: ONE test decides, a permutation test of a pre-registered statistic combining the rank of
the published order and its margin (auditor/analysis/combined.py), on the audited scores or, with
references, on the deviation from them. Items that share one option list are counted once (a seeded
representative), since they leak through each other. Also reported, descriptive only: the top-1 count
test (exact binomial / Poisson-binomial against 1/K), the rank-sum test, a chance-corrected leaked
fraction with a 95% interval, per-subject tests with Benjamini-Hochberg correction.

Verdicts (`Verdict`): "leakage" (p < DATASET_ALPHA), "no_evidence", and two that decide nothing (their
own exit code in the CLI): "nothing_scored" (no item has scores) and "too_few_scored" (even if every unit
had the published order on top, the test could not reach DATASET_ALPHA: "no evidence" would only say
that too little was scored; items whose scores are degenerate count as not scored here).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from auditor.analysis.combined import DRAWS, PermutationTest, permutation_test
from auditor.analysis.detector import ItemStats
from auditor.analysis.familiarity import familiarity_p
from auditor.analysis.itemtests import (
    ItemTest,
    deviation,
    item_test,
    levels,
    null_description,
    reference_means,
    reference_scores,
)
from auditor.analysis.lift import LIFT_GATE, LIFT_GATE_NO_REFERENCE, lift, lift_p, min_pool_for
from auditor.analysis.stats import benjamini_hochberg, leaked_fraction, poisson_binomial_sf, rank_sum_p_value
from auditor.input.sensitivity import representative

DEFAULT_ALPHA = 0.05  # item-level false-positive rate, split over the two scenarios (itemtests.levels)
DATASET_ALPHA = 1e-3  # what it takes to say "evidence of leakage" about a whole dataset


@dataclass(frozen=True)
class Null:
    """The item-level null, with the clean reference runs (kind "control") when there are any."""

    kind: str  # "exchangeable" | "control" (paired with reference runs of the same items)
    alpha: float
    control_top1: int = 0  # the (first) reference's own published-order wins
    control_n: int = 0
    source: str = ""  # the reference runs, "; "-separated
    control_z: dict[str, float] = field(default_factory=dict)  # item id -> the first reference's z_published
    references: tuple[Mapping[str, ItemStats], ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, **null_description(self.alpha, self.kind == "control",
                                                                      len(self.references))}  # fmt: skip
        # control_z stays out: the control run's own report has it
        if self.kind == "control":
            out |= {"source": self.source, "control_top1": self.control_top1, "control_n": self.control_n}
        return out

    def reference_for(self, v: ItemStats, *, raw: bool = False) -> np.ndarray[Any, Any] | None:
        """The references' mean standardised scores for v's orderings (`raw`: mean scores in nats)."""
        return reference_scores(v, self.references, raw=raw) if self.references else None


def exchangeable_null(alpha: float = DEFAULT_ALPHA) -> Null:
    return Null("exchangeable", alpha)


def control_null(references: Sequence[tuple[Sequence[ItemStats], str]], alpha: float = DEFAULT_ALPHA) -> Null:
    """Paired with clean reference runs on the same items: `references` holds (item statistics, source) each."""
    first = list(references[0][0]) if references else []
    return Null("control", alpha, sum(v.rank == 1 for v in first), len(first),
                "; ".join(src for _, src in references), {v.id: v.z_published for v in first},
                tuple({v.id: v for v in ref} for ref, _ in references))  # fmt: skip


def decide(v: ItemStats, null: Null, seed: int = 0, p_familiar: float | None = None) -> ItemTest:
    """One item's test; `p_familiar` (from `familiarity_p` over the whole dataset, see `decide_all`) adds the
    familiarity evidence, without it the item is judged on its orderings alone."""
    return _decide(v, null, seed, p_familiar, None, _means(v, null))


Means = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None  # reference_means' result


def _means(v: ItemStats, null: Null) -> Means:
    return reference_means(v, null.references) if null.references else None


def _decide(
    v: ItemStats, null: Null, seed: int, p_familiar: float | None, lifted: tuple[int, float] | None, means: Means
) -> ItemTest:
    ref, raw = means if means is not None else (None, None)
    return item_test(v, ref, null.alpha, seed, raw_ref=raw, p_familiar=p_familiar, lift=lifted)


def decide_all(verdicts: Sequence[ItemStats], null: Null, seed: int = 0) -> dict[str, ItemTest]:
    """The default item rule on a whole dataset: each item's familiarity p-value is taken against the
    dataset's no-preference items (auditor/analysis/familiarity.py), its lift against the unfamiliar items
    (auditor/analysis/lift.py), then each item is decided."""
    fam = familiarity_p(verdicts, null.references)
    means = {v.id: _means(v, null) for v in verdicts}  # once per item: the lift and the item test use them
    lifts = {v.id: _lift(v, bool(null.references), means[v.id]) for v in verdicts}
    gate = LIFT_GATE if null.references else LIFT_GATE_NO_REFERENCE
    min_pool = min_pool_for(levels(null.alpha, paired=bool(null.references), familiar=True, lifted=True)[1], gate)
    groups = {v.id: v.n_orderings for v in verdicts}
    p_lift = lift_p({key: t for key, (_, t) in lifts.items()}, fam, min_pool, groups)
    out = {}
    for v in verdicts:
        p = p_lift[v.id]
        out[v.id] = _decide(v, null, seed, fam[v.id], None if p is None else (lifts[v.id][0], p), means[v.id])
    return out


def _lift(v: ItemStats, paired: bool, means: Means) -> tuple[int, float]:
    """(highest ordering, lift) of the audited scores, or of their deviation from the references' mean (nan
    when a reference lacks the item)."""
    s = np.asarray(v.scores, dtype=float)
    if not len(s) or (paired and means is None):
        return -1, math.nan
    return lift(s if means is None else s - means[1])


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

    PERMUTATION = "permutation"  # rank + margin of the published order, permutation null (no control)
    CONTROL_PERMUTATION = "control_permutation"  # the same on the deviation from the reference(s)
    RANK_SUM = "rank_sum"  # ranks of the published order over every unit (no control)
    TOP1 = "top1_binomial"  # top-1 count over units against 1/K (no control)
    CONTROL_WILCOXON = "control_wilcoxon"  # paired z_published against the control's, same items
    CONTROL_FISHER = "control_fisher"  # top-1 rate against the control's
    SEQUENTIAL = "sequential"  # the always-valid confidence sequence (p = 1 / e-value)

    @property
    def description(self) -> str:
        return _TEST_TEXT[self]


_TEST_TEXT = {
    VerdictTest.PERMUTATION: "permutation test of the published order's rank and margin",
    VerdictTest.CONTROL_PERMUTATION: "permutation test of the published order's rank and margin, on the"
    " deviation from the reference",
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
    permutation: PermutationTest | None = None


def summarize(
    units: Sequence[ItemStats], null: Null, note: OrderNote = OrderNote(), *, n_degenerate: int = 0, seed: int = 0
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
    values, missing = _values(units, null)
    ptest = permutation_test(values, paired=null.kind == "control", seed=seed)
    p_key = ptest.p_value
    test = VerdictTest.CONTROL_PERMUTATION if null.kind == "control" else VerdictTest.PERMUTATION
    leak = p_key < DATASET_ALPHA
    verdict = Verdict.LEAKAGE if leak else Verdict.NO_EVIDENCE
    sentence = _sentence(leak, ptest, frac, null, top1, n, chance)
    if missing:
        sentence += f"; {missing} unit(s) without a reference score left out of the test"
    p_ctrl = p_key if null.kind == "control" else None
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
                          _subjects(units), ptest)  # fmt: skip


def _values(units: Sequence[ItemStats], null: Null) -> tuple[list[np.ndarray[Any, Any]], int]:
    """Each unit's values for the permutation test (scores, or the deviation from the references) and how
    many units had no reference score."""
    if null.kind != "control":
        return [np.asarray(v.scores, dtype=float) for v in units], 0
    pairs = [(v, null.reference_for(v)) for v in units]
    return [deviation(v, r) for v, r in pairs if r is not None], sum(r is None for _, r in pairs)


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
    on top, by the widest margin): at or above DATASET_ALPHA, no outcome could show leakage. The permutation
    test's exact p-value is then prod(1/K); its Monte Carlo estimate never goes below 1 / (DRAWS + 1)."""
    if not units:
        return 1.0
    log_p = -sum(math.log(v.n_orderings) for v in units)
    return max(math.exp(max(log_p, -700.0)), 1 / (DRAWS + 1))


def _fmt(test: PermutationTest) -> str:
    floor = " (no draw reached it)" if test.draws and test.p_value * (test.draws + 1) < 1.5 else ""
    return f"p={test.p_value:.2g}{floor}, permutation test of rank and margin, z={test.z:.1f}"


def _sentence(
    leak: bool, test: PermutationTest, frac: tuple[float, float, float], null: Null, top1: int, n: int, chance: float
) -> str:
    est, lo, hi = frac
    p = _fmt(test)
    if null.kind == "control":
        ctrl = null.control_top1 / max(1, null.control_n)
        which = "the control" if len(null.references) <= 1 else f"{len(null.references)} controls"
        head = (
            f"evidence of leakage compared with {which} ({p}; control top-1 rate {ctrl:.1%})"
            if leak
            else f"no evidence of leakage beyond {which} ({p}; control top-1 rate {ctrl:.1%})"
        )
    elif leak:
        head = (
            f"the published order is preferred more than chance ({p}): leakage, or natural order "
            "and pretraining exposure, which cannot be told apart without a control (--control-run)"
        )
    else:
        head = (
            f"no evidence that the published order is preferred ({p}); without a control run natural "
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

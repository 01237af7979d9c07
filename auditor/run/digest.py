"""An item's results boiled down the moment it finishes: its judgement, and what the report's cost and
accuracy sections count. Its records (every token's log-probability) are dropped then, so an audit holds
per-item outcomes only, whatever its size (`Scheduler.stream` hands each item over as it finishes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from auditor.analysis.accuracy import ItemAnswer, answer_item
from auditor.analysis.detector import ItemFailure, ItemStats, degenerate_reason, min_k_prob, span_score
from auditor.errors import AuditorError
from auditor.report.model import Degenerate, NotScoredItem
from auditor.run.plan import Plan
from auditor.scoring.scheduler import PromptResult

Outcome = ItemStats | ItemFailure | Degenerate | str  # a string: why the item was not scored


@dataclass(frozen=True)
class ItemDone:
    outcome: Outcome
    scored: int = 0  # the orderings' prompts with a score
    tokens: int = 0  # their prompt tokens
    text_bytes: int = 0  # their prompts' UTF-8 bytes
    complete: bool = False  # every prompt of the item has a score
    fresh: bool = False  # some prompt was scored by this run, not read from the cache
    answer: ItemAnswer | None = None  # --accuracy: the harness prompts' answer
    harness_scored: int = 0
    harness_tokens: int = 0
    times: tuple[str | None, str | None] = (None, None)  # earliest and latest scoring time of its records

    @property
    def all_tokens(self) -> int:
        """Prompt tokens of every prompt of the item with a score, its harness prompts' included."""
        return self.tokens + self.harness_tokens


def digest(
    plan: Plan,
    i: int,
    res: Sequence[PromptResult],
    *,
    seed: int,
    max_orderings: int,
    paper: bool = False,
    times: tuple[str | None, str | None] = (None, None),
) -> ItemDone:
    """Item i's outcome from its results (in `Plan.scored()[i]` order), without keeping its records."""
    rows = plan.rendered[i]
    mine, extra = res[: len(rows)], res[len(rows) :]
    landed = [(r.record, rend) for r, rend in zip(mine, rows, strict=True) if r.record is not None]
    answer = None
    if plan.accuracy:
        answer = answer_item(plan.items[i], plan.harness(i), [r.record for r in extra], [r.error for r in extra])
    harness = [r.record for r in extra if r.record is not None]
    return ItemDone(
        judge_one(plan, i, mine, seed, max_orderings, paper),
        scored=len(landed),
        tokens=sum(rec.counted_tokens for rec, _ in landed),
        text_bytes=sum(len(rend.text.encode()) for _, rend in landed),
        complete=all(r.record is not None for r in res),
        fresh=any(r.record is not None and not r.cached for r in res),
        answer=answer,
        harness_scored=len(harness),
        harness_tokens=sum(r.counted_tokens for r in harness),
        times=times,
    )


def judge_one(
    plan: Plan, i: int, res: Sequence[PromptResult], seed: int, max_orderings: int, paper: bool = False
) -> Outcome:
    """An item's statistics, its failure, degenerate scores, or (a string) why it was not scored."""
    item, perms, rows = plan.items[i], plan.orderings[i], plan.rendered[i]
    res = res[: len(rows)]  # the orderings' results (harness prompts follow them with --accuracy)
    missing = [r for r in res if r.record is None]
    if missing and all(r.not_scored for r in missing):
        return missing[0].error or "not scored"
    if missing:
        real = [r.error or "" for r in missing if not r.not_scored]
        return ItemFailure(item.id, item.subject, f"{len(missing)} of {len(res)} orderings failed: {real[0]}")
    try:
        records = [r.record for r in res if r.record is not None]
        spans = [span_score(rec, rend, skip_label=paper) for rec, rend in zip(records, rows, strict=True)]
        stats = plan.design.judge(item.id, item.subject, perms, spans, seed=seed, min_k=min_k_prob(records[0]),
                                  max_orderings=max_orderings)  # fmt: skip
    except AuditorError as err:
        return ItemFailure(item.id, item.subject, str(err))
    why = degenerate_reason(stats.scores, records)
    return stats if why is None else Degenerate(item.id, item.subject, why)


@dataclass
class Judged:
    stats: list[ItemStats] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    not_scored: list[NotScoredItem] = field(default_factory=list)
    degenerate: list[Degenerate] = field(default_factory=list)


def judge(plan: Plan, done: Sequence[ItemDone]) -> Judged:
    """The items' outcomes sorted by kind, in scoring order (`done[i]` is item i's)."""
    out = Judged()
    for i, d in enumerate(done):
        outcome = d.outcome
        if isinstance(outcome, ItemStats):
            out.stats.append(outcome)
        elif isinstance(outcome, ItemFailure):
            out.failures.append(outcome)
        elif isinstance(outcome, Degenerate):
            out.degenerate.append(outcome)
        else:
            out.not_scored.append(NotScoredItem(plan.items[i].id, outcome))
    return out

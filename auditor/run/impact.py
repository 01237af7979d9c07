"""The accuracy section of an audit (`--accuracy`): the harness prompts' results, judged items and flags in,
`AccuracySection` out. The harness prompts were scheduled with each item's orderings (Plan.scored)."""

from __future__ import annotations

from collections.abc import Sequence

from auditor.analysis.accuracy import AccuracySection, accuracy_section, answer_item
from auditor.analysis.assess import Assessment
from auditor.analysis.detector import ItemStats
from auditor.run.plan import Plan
from auditor.scoring.scheduler import PromptResult


def accuracy_from(
    plan: Plan, results: Sequence[Sequence[PromptResult]], stats: Sequence[ItemStats], assessment: Assessment
) -> AccuracySection:
    """`results[i]`: item i's prompts in Plan.scored() order (a prefix of the items: those the run used)."""
    answers = []
    prompts = tokens = 0
    for item, rows, harness, res in zip(plan.items, plan.rendered, plan.harness, results, strict=False):
        part = res[len(rows) :]
        records = [r.record for r in part]
        answers.append(answer_item(item, harness, records, [r.error for r in part]))
        done = [r for r in records if r is not None]
        prompts += len(done)
        tokens += sum(r.prompt_tokens if r.prompt_tokens is not None else len(r.tokens) for r in done)
    flagged = {v.id: assessment.flagged.get(v.id, False) for v in stats}
    n_options = {it.id: len(it.options) for it in plan.items}
    return accuracy_section(answers, flagged, n_options, prompts=prompts, prompt_tokens=tokens)

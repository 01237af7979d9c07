"""The accuracy section of an audit (`--accuracy`): the items' harness answers (made as each item finished,
auditor/run/digest.py), judged items and flags in, `AccuracySection` out."""

from __future__ import annotations

from collections.abc import Sequence

from auditor.analysis.accuracy import AccuracySection, accuracy_section
from auditor.analysis.assess import Assessment
from auditor.analysis.detector import ItemStats
from auditor.run.digest import ItemDone
from auditor.run.plan import Plan


def accuracy_from(
    plan: Plan, done: Sequence[ItemDone], stats: Sequence[ItemStats], assessment: Assessment
) -> AccuracySection:
    """`done[i]`: item i's digest (a prefix of the items: those the run used)."""
    answers = [d.answer for d in done if d.answer is not None]
    flagged = {v.id: assessment.flagged.get(v.id, False) for v in stats}
    n_options = {it.id: len(it.options) for it in plan.items}
    prompts = sum(d.harness_scored for d in done)
    return accuracy_section(answers, flagged, n_options, prompts=prompts,
                            prompt_tokens=sum(d.harness_tokens for d in done))  # fmt: skip

"""report.json sections about cost and coverage: what the verdict's prompts cost against the full
protocol, the budget and how it ended, the sequential test, and the items that were not scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auditor.analysis.sequential import SequentialTest
from auditor.report.model import FullProtocol, NotScoredItem, NotScoredSection, Spend
from auditor.run.config import AuditConfig
from auditor.run.digest import ItemDone
from auditor.run.plan import Plan
from auditor.scoring.budget import Budget, byte_upper_bound


@dataclass(frozen=True)
class Sections:
    """The report's sections beyond the verdicts (see `extra_sections`)."""

    spend: Spend
    not_scored: NotScoredSection
    set_aside: dict[str, Any] | None = None
    sequential: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None


def extra_sections(
    plan: Plan,
    cfg: AuditConfig,
    done: Sequence[ItemDone],
    not_scored: list[NotScoredItem],
    budget: Budget | None,
    seq: SequentialTest | None,
) -> Sections:
    """report.json sections beyond the verdicts: what was spent against the full protocol, budgets,
    the sequential test, and what was not scored. `done[i]` is item i's digest (those the run used).
    Only scores (not this run's traffic) enter them, so a re-run from the cache writes the same report."""
    tokens = sum(d.tokens for d in done)
    nbytes = sum(d.text_bytes for d in done)
    per_byte = tokens / nbytes if nbytes else None
    full_prompts = plan.full_protocol_prompts(cfg.max_orderings)
    full_tokens = None
    if per_byte is not None:
        identity_bytes = [len(plan.template.render(it, tuple(range(len(it.options)))).text.encode())
                          for it in plan.candidates]  # fmt: skip
        full_tokens = round(per_byte * sum(
            b * min(math.factorial(len(it.options)), cfg.max_orderings)
            for b, it in zip(identity_bytes, plan.candidates, strict=True)
        ))  # fmt: skip
    spend = Spend(
        prompts_used=sum(d.scored for d in done),
        prompt_tokens_used=tokens,
        full_protocol=FullProtocol(len(plan.candidates), "all", full_prompts, full_tokens),
        share_of_full_protocol=tokens / full_tokens if full_tokens else None,
        note="tokens of the prompts behind this report's verdicts (cached ones included); the full "
        "protocol's tokens are estimated from the tokens per byte measured on them",
    )
    set_aside = {k: {"count": len(v), "items": v} for k, v in plan.set_aside.items()} if plan.set_aside else None
    sequential = {**seq.to_json(), "items_available": len(plan.items)} if seq is not None else None
    section = None
    if budget is not None:
        remaining = [i for i, d in enumerate(done) if not d.complete]
        remaining += list(range(len(done), len(plan.items))) if seq is None else []
        scored = plan.scored()  # with --accuracy, each item's harness prompts follow its orderings
        cap, _ = budget.limits.token_cap()
        spent = budget.spent_tokens + budget.charged_tokens
        scored_items = sum(d.complete for d in done)
        per_item = sum(d.all_tokens for d in done) / scored_items if scored_items else None
        left = None if cap is None else max(0, cap - spent)
        section = {
            **budget.to_json(),
            "to_finish": {
                "items": len(remaining),
                "prompts": sum(len(scored[i]) for i in remaining),
                "tokens_upper_bound": sum(byte_upper_bound(r.text) for i in remaining for r in scored[i]),
                "tokens_estimate": None if per_item is None else round(per_item * len(remaining)),
            },
            "left": {
                "tokens": left,
                "requests": None if budget.limits.requests is None else budget.limits.requests - budget.spent_requests,
                # what the unspent tokens would have bought, at the tokens per item measured in this run
                "items_it_would_buy": None if left is None or not per_item else int(left // per_item),
            },
        }
    return Sections(spend, NotScoredSection(len(not_scored), tuple(not_scored[:1000])), set_aside, sequential, section)

"""report.json sections about cost and coverage: what the verdict's prompts cost against the full
protocol, the budget and how it ended, the sequential test, and the items that were not scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from auditor.analysis.sequential import SequentialTest
from auditor.report.model import FullProtocol, NotScoredItem, NotScoredSection, Spend
from auditor.run.config import AuditConfig
from auditor.run.plan import Plan
from auditor.scoring.budget import Budget, byte_upper_bound
from auditor.scoring.scheduler import PromptResult


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
    results: list[list[PromptResult]],
    not_scored: list[NotScoredItem],
    budget: Budget | None,
    seq: SequentialTest | None,
) -> Sections:
    """report.json sections beyond the verdicts: what was spent against the full protocol, budgets,
    the sequential test, and what was not scored. Only scores (not this run's traffic) enter them, so a
    re-run from the cache writes the same report."""
    scored = plan.scored()  # with --accuracy, each item's harness prompts follow its orderings
    budget_results, results = results, [res[: len(rows)] for rows, res in zip(plan.rendered, results, strict=False)]
    records = [r.record for res in results for r in res if r.record is not None]
    tokens = sum(r.prompt_tokens if r.prompt_tokens is not None else len(r.tokens) for r in records)
    nbytes = sum(len(rend.text.encode()) for rows, res in zip(plan.rendered[: len(results)], results, strict=True)
                 for rend, r in zip(rows, res, strict=True) if r.record is not None)  # fmt: skip
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
        prompts_used=len(records),
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
        remaining = [rows for rows, res in zip(scored[: len(results)], budget_results, strict=True)
                     if any(r.record is None for r in res)]  # fmt: skip
        remaining += scored[len(results) :] if seq is None else []
        cap, _ = budget.limits.token_cap()
        spent = budget.spent_tokens + budget.charged_tokens
        scored_items = sum(all(r.record is not None for r in res) for res in budget_results)
        all_tokens = sum(r.record.prompt_tokens if r.record.prompt_tokens is not None else len(r.record.tokens)
                         for res in budget_results for r in res if r.record is not None)  # fmt: skip
        per_item = all_tokens / scored_items if scored_items else None
        left = None if cap is None else max(0, cap - spent)
        section = {
            **budget.to_json(),
            "to_finish": {
                "items": len(remaining),
                "prompts": sum(len(rows) for rows in remaining),
                "tokens_upper_bound": sum(byte_upper_bound(r.text) for rows in remaining for r in rows),
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

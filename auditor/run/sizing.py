"""`auditor plan`: how many items (and tokens) an audit needs to detect a leaked fraction, before any spend.

Items: the planning model of auditor/analysis/power.py (effect sizes measured on a real canary, stated).
Tokens: the dataset's own prompts, rendered as `run` renders them (all orderings up to --max-orderings) for
a seeded sample of up to 200 items, counted with the offline approximation of auditor/endpoint/tokens.py
(its error bound is reported). With a reference the same items are audited twice.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from auditor.analysis.power import plan_answer
from auditor.endpoint.tokens import approximate
from auditor.errors import UsageError
from auditor.input.catalog import resolve
from auditor.input.items import load_items
from auditor.input.sampling import stratified_sample
from auditor.prompts.orderings import load_template, orderings_for

SAMPLE = 200


def size_audit(
    dataset: Path,
    *,
    fraction: float,
    target: float,
    reference: bool,
    template: str = "paper",
    max_orderings: int = 120,
    seed: int = 0,
    skip_invalid: bool = False,
) -> dict[str, Any]:
    if not (math.isfinite(fraction) and 0 < fraction <= 1):
        raise UsageError(f"--leaked-fraction must be in (0, 1] (got {fraction})")
    if not (math.isfinite(target) and 0 < target < 1):
        raise UsageError(f"--power must be between 0 and 1 (got {target})")
    path, _ = resolve(dataset)  # a bundled benchmark's name, or a file or directory
    items = load_items(path, skip_invalid=skip_invalid).items
    if not items:
        raise UsageError(f"--dataset {dataset}: no items")
    tpl = load_template(template)
    sample = stratified_sample(items, SAMPLE, seed)
    prompts = [
        tpl.render(it, p).text
        for it in sample
        for p in orderings_for(len(it.options), max_orderings=max_orderings, seed=seed, item_id=it.id)
    ]
    counted = approximate(prompts)
    per_item = counted.total / len(sample)
    answer = plan_answer(fraction, target, reference, per_item)
    answer |= {
        "dataset": str(dataset),
        "items_in_dataset": len(items),
        "prompts_per_item": len(prompts) / len(sample),
        "token_source": counted.source,
        "token_error_bound": counted.error_bound,
        "enough_items": answer["items"] is not None and answer["items"] <= len(items),
    }
    return answer


def render_plan(a: dict[str, Any]) -> str:
    ref = "paired with a clean reference run" if a["reference"] else "without a reference"
    head = f"to detect a leaked fraction of {a['leaked_fraction']:.0%} with {a['power']:.0%} power ({ref}," \
           f" dataset alpha {a['alpha']:g}):"  # fmt: skip
    if a["items"] is None:
        return f"{head}\n  not reachable with up to 10^7 items under the planning model"
    curve = ", ".join(f"{n}: {p:.0%}" for n, p in a["power_at"].items())
    lines = [
        head,
        f"  items   {a['items']} (the dataset has {a['items_in_dataset']})"
        + ("" if a["enough_items"] else "  <- more than the dataset holds"),
        f"  prompts {math.ceil(a['items'] * a['prompts_per_item'])} ({a['prompts_per_item']:.0f} orderings per item)",
        f"  tokens  ~{a['tokens']:,} ({a['tokens_note']}; {a['token_source']} count, error bound"
        f" {a['token_error_bound']:.0%}, {a['tokens_per_item']:.0f} per item)",
        f"  power at n items: {curve}",
        f"  effect sizes: {a['effect']['source']} (a leak as strong as that canary's; weaker leaks need more)",
        f"  caveat: {a['caveat']}",
    ]
    return "\n".join(lines)

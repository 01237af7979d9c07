"""Turn item verdicts into decisions for one method, with order-sensitive items and shared option lists
handled, and the null (exchangeable, or a control run) stated.

Methods: `auditor` (default, calibrated: see auditor/analysis/verdicts.py and itemtests.py), `paper-a` and
`paper-b` (the reference rules, uncalibrated: see auditor/analysis/paper.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from auditor.analysis.detector import ItemStats, stats_from_report
from auditor.analysis.itemtests import ItemTest
from auditor.analysis.paper import PAPER_DELTAS, isolation_scores, paper_a, paper_b
from auditor.analysis.verdicts import (
    DEFAULT_ALPHA,
    DatasetSummary,
    Null,
    OrderNote,
    control_null,
    decide_all,
    exchangeable_null,
    representatives,
    summarize,
)
from auditor.errors import UsageError
from auditor.input.items import Item
from auditor.input.sensitivity import group_by_option_set, order_sensitivity


class Method(StrEnum):
    """How items are flagged: calibrated (`auditor`), or the reference paper's rules (uncalibrated)."""

    AUDITOR = "auditor"
    PAPER_A = "paper-a"
    PAPER_B = "paper-b"

    @property
    def is_paper(self) -> bool:
        """Reproduces the reference code (its template and its off-by-one scored span)."""
        return self is not Method.AUDITOR


METHODS = tuple(m.value for m in Method)


@dataclass(frozen=True)
class Assessment:
    method: Method
    null: Null
    flagged: dict[str, bool]
    scenario: dict[str, str | None]
    order_reasons: dict[str, list[str]]
    group_of: dict[str, str]
    group_size: dict[str, int]
    paper_b: dict[str, dict[str, bool]]
    excluded: list[str]
    summary: DatasetSummary
    tests: dict[str, ItemTest]  # the default method's per-item p-values


def load_control(path: Path) -> tuple[list[ItemStats], str]:
    """Item verdicts of an earlier run (its directory or its report.json)."""
    report = path / "report.json" if path.is_dir() else path
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        items = [stats_from_report(d) for d in data["items"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"--control-run {path}: not a readable auditor report ({err})") from None
    if not items:
        raise UsageError(f"--control-run {path}: the report has no scored items")
    prov = data.get("provenance", {}).get("endpoint", {})
    return items, f"{report} (model {prov.get('model', '?')})"


def assess(
    verdicts: Sequence[ItemStats],
    items: Sequence[Item],
    *,
    method: Method = Method.AUDITOR,
    control: Path | Sequence[Path] | None = None,
    exclude_order_sensitive: bool = False,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    n_degenerate: int = 0,
) -> Assessment:
    """Decisions under `method`; `n_degenerate`: items scored but left out (degenerate scores), which the
    dataset verdict names when too few items are left to decide."""
    by_id = {it.id: it for it in items}
    reasons = {v.id: order_sensitivity(by_id[v.id]) for v in verdicts}
    groups = group_by_option_set(items)  # over every item given: option_group_size counts the ones not scored too
    group_of = {i: key for key, ids in groups.items() for i in ids}
    group_size = {i: len(ids) for ids in groups.values() for i in ids}
    excluded = [v.id for v in verdicts if exclude_order_sensitive and reasons[v.id]]
    kept = [v for v in verdicts if v.id not in set(excluded)]
    controls = [control] if isinstance(control, Path) else list(control or [])
    null = control_null([load_control(c) for c in controls], alpha) if controls else exchangeable_null(alpha)
    flagged, scenario, pb, tests = _decisions(kept, method, null, seed)
    units = representatives(kept, group_of, seed)
    note = OrderNote(
        sensitive_winners=sum(bool(reasons[v.id]) for v in units if v.rank_random == 1),
        excluded=len(excluded) if exclude_order_sensitive else None,
    )
    summary = summarize(units, null, note, n_degenerate=n_degenerate, seed=seed)
    return Assessment(method, null, flagged, scenario, reasons, group_of, group_size, pb, excluded, summary, tests)


def _decisions(
    verdicts: Sequence[ItemStats], method: Method, null: Null, seed: int
) -> tuple[dict[str, bool], dict[str, str | None], dict[str, dict[str, bool]], dict[str, ItemTest]]:
    flagged: dict[str, bool] = {}
    scenario: dict[str, str | None] = {}
    pb: dict[str, dict[str, bool]] = {}
    tests: dict[str, ItemTest] = decide_all(verdicts, null, seed) if method is Method.AUDITOR else {}
    for v in verdicts:
        if method is Method.AUDITOR:
            d = tests[v.id]
            flagged[v.id], scenario[v.id] = d.flagged, d.scenario
        elif method is Method.PAPER_A:
            flagged[v.id] = paper_a(v.scores)
            scenario[v.id] = "a" if flagged[v.id] else None
        else:
            decision = isolation_scores(v.scores)
            pb[v.id] = {str(d): paper_b(decision, d) for d in PAPER_DELTAS}
            flagged[v.id] = pb[v.id][str(PAPER_DELTAS[0])]
            scenario[v.id] = "b" if flagged[v.id] else None
    return flagged, scenario, pb, tests


def item_fields(a: Assessment, item_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "flagged": a.flagged.get(item_id, False),
        "scenario": a.scenario.get(item_id),
        "order_sensitive": bool(a.order_reasons.get(item_id)),
        "order_reasons": a.order_reasons.get(item_id, []),
        "option_group_size": a.group_size.get(item_id, 1),
        "excluded": item_id in a.excluded,
    }
    if item_id in a.paper_b:
        out["paper_b"] = a.paper_b[item_id]
    if item_id in a.tests:
        out["p"] = a.tests[item_id].to_json()
    return out

"""report.json (the contract, for machines) and report.md (for people), built from one typed Report
and written atomically.

The report depends only on the scores and the provenance, so re-running an audit from the cache
writes byte-identical files. Run statistics (requests sent, cache hits, wall time) are not part of
it: the CLI prints them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from auditor.analysis.assess import Assessment
from auditor.analysis.detector import ItemFailure, ItemStats
from auditor.analysis.verdicts import Interval, Verdict, VerdictTest
from auditor.input.items import Item, Skipped
from auditor.report.markdown import render_markdown
from auditor.report.model import (
    ControlSection,
    Degenerate,
    DegenerateSection,
    Failure,
    ItemEntry,
    Report,
    Summary,
    to_json,
)
from auditor.report.spend import Sections


def write_report(report: Report, out: Path, data: dict[str, Any] | None = None) -> list[Path]:
    """report.json, report.md and report.html under `out`, each replaced atomically; returns their paths.
    `data`: `to_json(report)` when the caller already has it (a 14k-item report's is ~100 MB of objects).

    report.html is built from report.json's data alone (like `auditor compare`, a reader of the file)."""
    out.mkdir(parents=True, exist_ok=True)
    js, md, page = out / "report.json", out / "report.md", out / "report.html"
    data = to_json(report) if data is None else data
    _atomic_write(js, report_json_parts(data))
    _atomic_write(md, render_markdown(report))
    from auditor.report.html import render_html  # plotly loads only when a report is written

    _atomic_write(page, render_html(data))
    return [js, md, page]


def dumps_report(data: dict[str, Any]) -> str:
    """report.json's text: indented by one space, except that each element of `items` is on one line."""
    return "".join(report_json_parts(data))


def report_json_parts(data: dict[str, Any]) -> Iterator[str]:
    """`dumps_report`'s text in pieces, one per item, so a 14k-item report (23 MB) is written without
    first being one string (with its list of lines, that cost ~90 MB at the end of a run).

    json.dumps with an indent runs the pure-Python encoder, ~1 s per 1,000 items here (a 14k-item audit:
    a quarter of a minute); one line per item runs the C encoder. Still one JSON document."""
    items = data.get("items")
    if not items:
        yield json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
        return
    marker = '\n "items": []'
    head = json.dumps({**data, "items": []}, indent=1, ensure_ascii=False, allow_nan=False)
    if head.count(marker) != 1:  # a key inside another section spelled the same way: the slow path
        yield json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
        return
    before, after = head.split(marker)
    yield before + '\n "items": [\n  '
    for k, it in enumerate(items):
        yield (",\n  " if k else "") + json.dumps(it, ensure_ascii=False, allow_nan=False)
    yield "\n ]" + after + "\n"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; a report is written with the mode any new file gets (0644 under umask 022).
# Read once, at import: os.umask can only be read by setting it.
FILE_MODE = 0o666 & ~_umask()


def _atomic_write(path: Path, text: str | Iterable[str]) -> None:
    """`path` replaced by `text` (or its pieces, in order), or left as it was."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if isinstance(text, str):
                fh.write(text)
            else:
                fh.writelines(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_report(
    stats: Sequence[ItemStats],
    failures: Sequence[ItemFailure],
    provenance: dict[str, Any],
    *,
    skipped: Sequence[Skipped] = (),
    stopped_by: str | None = None,
    assessment: Assessment,
    sections: Sections,
    texts: Mapping[str, Item] | None = None,
    degenerate: Sequence[Degenerate] = (),
) -> Report:
    """The report of one audit: `stats` of every scored item, the assessment's decisions, the sections.

    Headline counts are over the items the assessment kept (order-sensitive ones excluded on request)."""
    a = assessment
    excluded = set(a.excluded)
    kept = [v for v in stats if v.id not in excluded]
    n = len(kept)
    n_top1 = sum(v.top1 for v in kept)
    est, lo, hi = a.summary.fraction
    flagged = [i for i, f in a.flagged.items() if f]
    n_sensitive = sum(bool(a.order_reasons.get(v.id)) for v in stats)
    common: dict[str, Any] = {
        "verdict": a.summary.verdict,
        "verdict_text": a.summary.sentence,
        "verdict_test": a.summary.test,
        "p_verdict": a.summary.p_verdict,
        "leaked_fraction": Interval(est, lo, hi),
    }
    if sections.sequential is not None and stats:  # an always-valid decision replaces the fixed-sample one
        common = _sequential_summary(sections.sequential)  # (peeking); with nothing to judge, the summary says why
    summary = Summary(
        **common,
        method=a.method,
        partial=stopped_by is not None,
        stopped_by=stopped_by,
        n_items=n,
        n_top1=n_top1,
        top1_rate=n_top1 / n if n else 0.0,
        chance_rate=sum(1.0 / v.n_orderings for v in kept) / n if n else 0.0,
        n_units=a.summary.n_units,
        units_top1=a.summary.top1,
        p_top1=a.summary.p_binomial,
        p_rank_sum=a.summary.p_rank_sum,
        p_vs_control=a.summary.p_control,
        null=a.null,
        n_flagged=len(flagged),
        n_flagged_a=sum(a.scenario.get(i) == "a" for i in flagged),
        n_flagged_b=sum(a.scenario.get(i) == "b" for i in flagged),
        n_order_sensitive=n_sensitive,
        order_sensitive_share=n_sensitive / len(stats) if stats else 0.0,
        n_excluded_order_sensitive=len(a.excluded),
        n_failed=len(failures),
        n_skipped_invalid=len(skipped),
        n_not_scored=sections.not_scored.count,
        n_degenerate=len(degenerate),
        subjects=a.summary.subjects,
    )
    return Report(
        summary=summary,
        items=tuple(_entry(v, a, (texts or {}).get(v.id)) for v in stats),
        failures=tuple(Failure(f.id, f.subject, f.reason) for f in failures),
        skipped_invalid=tuple(skipped),
        spend=sections.spend,
        not_scored=sections.not_scored,
        provenance=provenance,
        set_aside=sections.set_aside,
        sequential=sections.sequential,
        budget=sections.budget,
        control=_control(a),
        degenerate=DegenerateSection(len(degenerate), tuple(degenerate)) if degenerate else None,
    )


def _entry(v: ItemStats, a: Assessment, item: Item | None) -> ItemEntry:
    return ItemEntry(
        id=v.id,
        subject=v.subject,
        question=None if item is None else item.question,
        options=None if item is None else item.options,
        answer=None if item is None else item.answer,
        n_orderings=v.n_orderings,
        rank=v.rank,
        top1=v.top1,
        p_value=v.p_value,
        margin=v.margin,
        rank_random=v.rank_random,
        z_published=v.z_published,
        outlier_score=v.outlier_score,
        best_ordering=tuple(v.best_ordering),
        min_k=v.min_k if v.min_k == v.min_k else None,
        flagged=a.flagged.get(v.id, False),
        scenario=a.scenario.get(v.id),
        order_sensitive=bool(a.order_reasons.get(v.id)),
        order_reasons=tuple(a.order_reasons.get(v.id, [])),
        option_group_size=a.group_size.get(v.id, 1),
        excluded=v.id in a.excluded,
        scores=tuple(v.scores),
        orderings=tuple(tuple(p) for p in v.orderings),
        paper_b=a.paper_b.get(v.id),
        p=a.tests[v.id].to_json() if v.id in a.tests else None,
    )


def _control(a: Assessment) -> ControlSection | None:
    """The control run's item statistic (z of the published order), for the audited-vs-control plot."""
    n = a.null
    if n.kind != "control":
        return None
    return ControlSection(n.source, n.control_n, n.control_top1, n.control_z)


def _sequential_summary(seq: dict[str, Any]) -> dict[str, Any]:
    lo, hi = seq["leaked_fraction_interval"]["low"], seq["leaked_fraction_interval"]["high"]
    decision = seq["decision"]
    n, tol, alpha = seq["items_used"], seq["tolerance"], seq["alpha"]
    if decision == "leakage":
        low = f"{lo:.0%} to {hi:.0%}" if lo > 0 else f"above 0, at most {hi:.0%}"
        text = (f"sequential test: leakage, decided after {n} items (e-value {seq['e_value_no_leakage']:.3g} >="
                f" 1/alpha = {1 / alpha:g}); leaked fraction {low} (always-valid {1 - alpha:.0%}"
                " confidence sequence)")  # fmt: skip
    elif decision == "no_evidence":
        text = (f"sequential test: no evidence of leakage above the tolerance: after {n} items the leaked"
                f" fraction is at most {hi:.0%} (tolerance {tol:.0%}) with {1 - alpha:.0%} confidence")  # fmt: skip
    else:
        text = (f"sequential test undecided after {n} items: leaked fraction {lo:.0%} to {hi:.0%}"
                f" ({1 - alpha:.0%} confidence sequence); add items or raise the budget")  # fmt: skip
    e_value = seq["e_value_no_leakage"]
    verdicts = {"leakage": Verdict.LEAKAGE, "no_evidence": Verdict.NO_EVIDENCE}
    return {  # undecided: the items ran out before the test could decide: too few scored
        "verdict": verdicts.get(decision, Verdict.TOO_FEW_SCORED),
        "verdict_text": text,
        "verdict_test": VerdictTest.SEQUENTIAL,
        "p_verdict": min(1.0, 1.0 / e_value) if e_value > 0 else 1.0,
        "leaked_fraction": Interval(seq["leaked_fraction_estimate"], lo, hi),
        "sequential_decision": decision,
        "p_values_descriptive_only": True,
    }

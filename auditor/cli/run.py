"""`auditor run` and `auditor estimate`: the audit with its progress bar and the terminal's verdict block."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from typing import Any

from auditor.cli.options import audit_config
from auditor.cli.progress import Progress
from auditor.report.markdown import fmt_p, headline_rows
from auditor.run.audit import AuditOutcome, run_audit
from auditor.run.codes import outcome_code
from auditor.run.estimate import estimate, render


def notice(text: str) -> None:
    print(f"auditor: {text}", file=sys.stderr, flush=True)


async def run_command(args: argparse.Namespace) -> int:
    cfg = audit_config(args)
    progress = Progress(enabled=not args.quiet and not args.json and sys.stderr.isatty())
    try:
        outcome = await run_audit(cfg, on_start=progress.start, on_progress=progress.advance, on_notice=notice)
    finally:
        progress.close()
    print_outcome(outcome, as_json=args.json, quiet=args.quiet)
    summary = outcome.report.summary
    if outcome.report.skipped_invalid and not args.json:
        print(f"auditor: {skipped_notice(outcome)}", file=sys.stderr)
    if not summary.verdict.decided:
        print(f"auditor: no verdict ({summary.verdict.value}): {summary.verdict_text}", file=sys.stderr)
    return outcome_code(summary, fail_on_leak=args.fail_on_leak)


async def estimate_command(args: argparse.Namespace) -> int:
    result = await estimate(audit_config(args))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(render(result))
    return 0


def skipped_notice(outcome: AuditOutcome) -> str:
    """What the loader skipped as invalid, by reason (report.json `skipped_invalid` lists every one)."""
    skipped = outcome.report.skipped_invalid
    reasons = Counter(re.sub(r"\b[A-Z]\b", "X", s.reason).split(" (")[0] for s in skipped)
    top = "; ".join(f"{r}: {n}" for r, n in reasons.most_common(4)) + ("; ..." if len(reasons) > 4 else "")
    return f"{len(skipped)} item(s) skipped as invalid ({top}); report.json's skipped_invalid lists each one"


def outcome_rows(outcome: AuditOutcome) -> list[tuple[str, str]]:
    """The terminal's closing block: report.md's verdict block, then this run's traffic, spend and paths."""
    st = outcome.stats
    secs = max(outcome.seconds, 1e-9)
    audited = outcome.report.provenance["dataset"].get("description", "")
    rows = [("audited", audited), *headline_rows(outcome.report)] if audited else headline_rows(outcome.report)
    sent = f"{st.scored} scored ({st.scored / secs:.1f}/s), {st.cached} from cache, {st.failed} failed"
    if st.failed_earlier:
        sent += f", {st.failed_earlier} failed earlier (not re-sent; add --retry-failed)"
    rows.append(("prompts", sent))
    why = ", ".join(f"{k}: {v}" for k, v in sorted(st.retries_by_reason.items()))
    probe = "cached" if outcome.probe_cached else "sent"
    retries = f"{st.retries} retries" + (f": {why}" if why else "")
    rows.append(("requests", f"{st.requests} ({retries}); probe {probe}; {outcome.seconds:.1f} s"))
    rows.append(("spend", _spend(outcome)))
    rows.append(("report", ", ".join(str(p) for p in outcome.paths)))
    return rows


def _spend(outcome: AuditOutcome) -> str:
    sp = outcome.report.spend
    behind = f"tokens behind the verdict: {sp.prompt_tokens_used}"
    if sp.share_of_full_protocol:
        full = sp.full_protocol
        behind += (f" ({sp.share_of_full_protocol:.1%} of the full protocol's ~{full.prompt_tokens_estimate} on"
                   f" {full.items} items)")  # fmt: skip
    if outcome.budget is None:
        return behind
    b = outcome.budget
    total = b.spent_tokens + b.charged_tokens
    price = b.cost(total)
    cost = f", ${price:.4f}" if price is not None else ""
    return f"this run: {total} tokens, {b.spent_requests} requests{cost}; {behind}"


def print_outcome(outcome: AuditOutcome, *, as_json: bool = False, quiet: bool = False) -> None:
    """The closing block on stdout; `as_json`: one JSON document instead; `quiet`: the verdict line only."""
    rows = outcome_rows(outcome)
    if as_json:
        print(json.dumps(outcome_json(outcome), indent=1, ensure_ascii=False, allow_nan=False))
        return
    if quiet:
        s = outcome.report.summary
        paths = ", ".join(str(p) for p in outcome.paths)
        verdict = dict(rows)["verdict"]
        print(f"auditor: {verdict}; {s.verdict_test.value} p = {fmt_p(s.p_verdict)}; report: {paths}")
        return
    report = outcome.report
    if report.summary.sequential_decision and outcome.scored_not_used:
        print(f"{outcome.scored_not_used} item(s) in flight when the test decided were scored but not used")
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def outcome_json(outcome: AuditOutcome) -> dict[str, Any]:
    """`--json`: report.json's summary, this run's traffic and the report paths (one JSON document)."""
    from auditor.report.model import to_json

    st = outcome.stats
    return {
        "summary": to_json(outcome.report.summary),
        "run": {
            "seconds": outcome.seconds,
            "prompts_scored": st.scored,
            "prompts_cached": st.cached,
            "prompts_failed": st.failed,
            "prompts_failed_earlier": st.failed_earlier,
            "requests": st.requests,
            "retries": st.retries,
            "retries_by_reason": dict(sorted(st.retries_by_reason.items())),
            "probe_cached": outcome.probe_cached,
            "budget": None if outcome.budget is None else outcome.budget.to_json(),
        },
        "report": [str(p) for p in outcome.paths],
    }

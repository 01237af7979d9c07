"""`auditor run` and `auditor estimate`: the audit with its progress bar and terminal summary."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from auditor.analysis.verdicts import UNDECIDED
from auditor.cli.options import audit_config
from auditor.run.audit import AuditOutcome, run_audit, summary_line
from auditor.run.estimate import estimate, render

EXIT_UNDECIDED = 6  # the run finished and wrote its report, but nothing (or too little) was scored to decide


def progress_hooks() -> tuple[Any, Any, Any]:
    bar: list[Any] = []

    def start(total: int) -> None:
        if sys.stderr.isatty():
            from tqdm import tqdm

            bar.append(tqdm(total=total, unit="prompt", file=sys.stderr, dynamic_ncols=True))

    def advance(n: int) -> None:
        if bar:
            bar[0].update(n)

    def close() -> None:
        if bar:
            bar[0].close()

    return start, advance, close


def notice(text: str) -> None:
    print(f"auditor: {text}", file=sys.stderr, flush=True)


async def run_command(args: argparse.Namespace) -> int:
    cfg = audit_config(args)
    start, advance, close = progress_hooks()
    try:
        outcome = await run_audit(cfg, on_start=start, on_progress=advance, on_notice=notice)
    finally:
        close()
    print_outcome(outcome)
    summary = outcome.report.data["summary"]
    if summary["verdict"] in UNDECIDED:
        print(f"auditor: no verdict ({summary['verdict']}): {summary['verdict_text']}", file=sys.stderr)
        return EXIT_UNDECIDED
    return 0


async def estimate_command(args: argparse.Namespace) -> int:
    result = await estimate(audit_config(args))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(render(result))
    return 0


def print_outcome(outcome: AuditOutcome) -> None:
    st = outcome.stats
    secs = max(outcome.seconds, 1e-9)
    n_items = outcome.report.data["summary"]["n_items"] + outcome.report.data["summary"]["n_failed"]
    print(f"audited: {outcome.report.data['provenance']['dataset'].get('description', '')}")
    print(summary_line(outcome.report))
    print(f"items: {n_items} in {outcome.seconds:.1f} s ({n_items / secs:.2f} items/s)")
    print(
        f"prompts: {st.scored} scored ({st.scored / secs:.1f}/s), {st.cached} from cache, {st.failed} failed; "
        f"requests: {st.requests} ({st.retries} retries); probe {'cached' if outcome.probe_cached else 'sent'}; "
        f"{outcome.seconds:.1f} s"
    )
    if st.failed_earlier:
        print(f"{st.failed_earlier} prompt(s) failed in an earlier run and were not re-sent; add --retry-failed")
    data = outcome.report.data
    if data.get("sequential"):
        print(data["summary"]["verdict_text"])
        if outcome.scored_not_used:
            print(f"{outcome.scored_not_used} item(s) in flight when the test decided were scored but not used")
    spend = data.get("spend") or {}
    if spend.get("share_of_full_protocol"):
        full = spend["full_protocol"]
        print(
            f"tokens behind the verdict: {spend['prompt_tokens_used']} ({spend['share_of_full_protocol']:.1%} of the"
            f" full protocol's ~{full['prompt_tokens_estimate']} on {full['items']} items)"
        )
    if outcome.budget is not None:
        b = outcome.budget.to_json()
        cost = f", ${b['cost']:.4f}" if b["cost"] is not None else ""
        print(f"this run spent: {b['tokens_total']} tokens, {b['requests']} requests{cost} (cached prompts are free)")
        if b["stopped_by"]:
            fin = data["budget"]["to_finish"]
            print(
                f"auditor: the {b['stopped_by']} budget stopped the run; {fin['items']} item(s) left (at most"
                f" {fin['tokens_upper_bound']} tokens); the report is marked partial",
                file=sys.stderr,
            )
    print("report: " + ", ".join(str(p) for p in outcome.paths))

"""Exit codes: one table, printed in every --help and in the README.

A domain error carries its code (`AuditorError.exit_code`); a finished run's code comes from its
report (`outcome_code`): with --fail-on-leak a leakage verdict comes first (leakage found on part of
the items is still leakage), then interrupted, partial (a budget stopped it: raise the budget),
undecided (nothing or too little scored), complete.
"""

from __future__ import annotations

from enum import IntEnum

from auditor.analysis.verdicts import Verdict
from auditor.report.model import Summary


class ExitCode(IntEnum):
    OK = 0
    LEAKAGE = 1
    USAGE = 2
    CACHE = 3
    ENDPOINT = 4
    PARTIAL = 5
    UNDECIDED = 6
    INTERNAL = 70
    INTERRUPTED = 130
    TERMINATED = 143


MEANING = {
    ExitCode.OK: "complete: the verdict is in the report (leakage or not, unless --fail-on-leak)",
    ExitCode.LEAKAGE: "--fail-on-leak and the verdict is leakage",
    ExitCode.USAGE: "bad input: flags, dataset, template, an unusable --out; nothing was sent",
    ExitCode.CACHE: "the SQLite cache cannot be opened, written or locked",
    ExitCode.ENDPOINT: "endpoint unreachable, refusing, or unable to return prompt logprobs",
    ExitCode.PARTIAL: "partial: a budget (--max-tokens/-requests/-cost/-time) stopped the run (report written"
    " if anything was scored)",
    ExitCode.UNDECIDED: "no verdict: nothing scored, or too few items to decide (verdict nothing_scored or"
    " too_few_scored; report written)",
    ExitCode.INTERNAL: "internal error (a bug: AUDITOR_DEBUG=1 shows the traceback)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); a partial report is written once scoring started",
    ExitCode.TERMINATED: "terminated (SIGTERM); handled like Ctrl-C",
}

EXIT_CODES_HELP = "exit codes:\n" + "\n".join(f"  {int(c):<4} {MEANING[c]}" for c in ExitCode)


def outcome_code(summary: Summary, *, fail_on_leak: bool) -> ExitCode:
    """The exit code of a run that wrote its report."""
    if fail_on_leak and summary.verdict is Verdict.LEAKAGE:
        return ExitCode.LEAKAGE
    if summary.stopped_by == "interrupted":
        return ExitCode.INTERRUPTED
    if summary.partial:
        return ExitCode.PARTIAL
    if not summary.verdict.decided:
        return ExitCode.UNDECIDED
    return ExitCode.OK

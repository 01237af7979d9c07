"""A run's exit code: one enum for the CLI, the grid's cells and CI.

A domain error carries its code (`AuditorError.exit_code`); a finished run's code comes from its
report (`outcome_code`): with --fail-on-leak a leakage verdict comes first (leakage found on part of
the items is still leakage), then interrupted, partial (a budget stopped it: raise the budget),
undecided (nothing or too little scored), complete. What each code means, as --help prints it, is in
auditor/cli/codes.py.
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

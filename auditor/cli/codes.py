"""Exit codes: one table, printed in every --help and in the README (the codes: auditor/run/codes.py)."""

from __future__ import annotations

from auditor.run.codes import ExitCode

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

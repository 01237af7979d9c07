"""The command line's edge: parse, dispatch, and turn errors into one line and an exit code.

Nothing below the CLI prints or exits. Domain errors become one line on stderr and an exit code
(`EXIT_CODES`, also printed by --help); set AUDITOR_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Sequence

from auditor import __version__
from auditor.cli.compare import compare_command, compare_parser
from auditor.cli.datasets import datasets_command
from auditor.cli.demo import demo_command, demo_options
from auditor.cli.options import Parser, audit_options, endpoint_config, endpoint_options
from auditor.cli.probe import probe_command
from auditor.cli.run import estimate_command, print_outcome, run_command
from auditor.endpoint.config import endpoint_secrets
from auditor.endpoint.secrets import redact
from auditor.errors import AuditorError, CapabilityError
from auditor.run.audit import AuditInterrupted

DESCRIPTION = "Tell whether a language model was trained on a multiple-choice benchmark, from an endpoint."
EXIT_CODES = """exit codes:
  0    a verdict: leakage or no evidence (report written)
  1    internal error (a bug; AUDITOR_DEBUG=1 for the traceback)
  2    bad input: flags, dataset, template, an unusable --out
  3    the cache cannot be opened, written or locked
  4    the endpoint: unreachable, refused, or cannot give prompt logprobs
  5    a budget (--max-time, --max-tokens...) ran out before anything was scored
  6    no verdict: nothing was scored, or too few items to decide (report written, verdict
       nothing_scored or too_few_scored)
  130  interrupted by Ctrl-C, 143 by SIGTERM (a partial report is written once scoring started)"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="auditor", description=DESCRIPTION, epilog=EXIT_CODES,
                    formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--version", action="version", version=f"auditor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("probe", help="check that an endpoint returns usable prompt log-probabilities")
    endpoint_options(pr)

    run = sub.add_parser("run", help="audit a model on a benchmark and write report.json / report.md / report.html")
    audit_options(run)

    est = sub.add_parser("estimate", help="what `run` with the same flags would cost, before any scoring request")
    audit_options(est, estimate=True)
    est.add_argument("--json", action="store_true", help="print the estimate as JSON")

    sub.add_parser("datasets", help="list the benchmark samples shipped with auditor (--dataset NAME)")
    compare_parser(sub)

    demo = sub.add_parser("demo", help="a real audit in ~3 minutes: the small embedded model, in this process, on MMLU")
    demo_options(demo)
    return parser


def _secrets(args: argparse.Namespace) -> tuple[str, ...]:
    if not hasattr(args, "base_url"):  # a command without an endpoint (compare)
        return ()
    try:
        return endpoint_secrets(endpoint_config(args))
    except AuditorError:
        return ()


async def _terminable(work: Awaitable[int], terminated: list[int]) -> int:
    """`work`, with SIGTERM handled like Ctrl-C: the task is cancelled, so a run writes its partial report."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def terminate() -> None:
        terminated.append(signal.SIGTERM)
        if task is not None:
            task.cancel()

    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        return await work
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _how(terminated: list[int]) -> str:
    return "terminated (SIGTERM)" if terminated else "interrupted"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a bad flag (already reported in one line)
        return exit_.code if isinstance(exit_.code, int) else 2
    debug = os.environ.get("AUDITOR_DEBUG") == "1"
    terminated: list[int] = []
    try:
        commands = {"probe": probe_command, "run": run_command, "estimate": estimate_command, "demo": demo_command}
        command = {**commands, "compare": compare_command}.get(args.command, datasets_command)
        return asyncio.run(_terminable(command(args), terminated))
    except CapabilityError as err:
        print(f"auditor: endpoint cannot be audited: {redact(str(err), _secrets(args))}", file=sys.stderr)
        return err.exit_code
    except AuditorError as err:
        if debug:
            traceback.print_exc()
        print(f"auditor: error: {redact(str(err), _secrets(args))}", file=sys.stderr)
        return err.exit_code
    except AuditInterrupted as stop:
        print_outcome(stop.outcome)
        print(
            f"auditor: {_how(terminated)}; the partial report above covers what was scored. Scored prompts are"
            " cached: re-run the same command to resume.",
            file=sys.stderr,
        )
        return 143 if terminated else 130
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"auditor: {_how(terminated)}; scored prompts are cached: re-run the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 143 if terminated else 130
    except Exception as err:  # a bug: still one line unless debugging
        if debug:
            traceback.print_exc()
        print(
            f"auditor: internal error: {type(err).__name__}: {redact(str(err), _secrets(args))}"
            " (set AUDITOR_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

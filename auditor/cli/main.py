"""The command line's edge: parse, dispatch, and turn errors into one line and an exit code.

Nothing below the CLI prints or exits. Domain errors become one line on stderr and an exit code
(`ExitCode`, listed in every --help); set AUDITOR_DEBUG=1 for the traceback.
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
from auditor.analysis.verdicts import Verdict
from auditor.cli.codes import EXIT_CODES_HELP
from auditor.cli.compare import compare_command, compare_parser
from auditor.cli.datasets import datasets_command
from auditor.cli.demo import demo_command, demo_options
from auditor.cli.grid import grid_command, grid_parser
from auditor.cli.options import Parser, audit_options, endpoint_config, endpoint_options
from auditor.cli.plan import plan_command, plan_options
from auditor.cli.probe import probe_command
from auditor.cli.run import estimate_command, print_outcome, run_command
from auditor.endpoint.config import endpoint_secrets
from auditor.endpoint.secrets import redact
from auditor.errors import AuditorError, CapabilityError
from auditor.run.audit import AuditInterrupted
from auditor.run.codes import ExitCode
from auditor.run.collector import audit_collector

DESCRIPTION = "Tell whether a language model was trained on a multiple-choice benchmark, from an endpoint."
URL = "http://127.0.0.1:8000/v1"
EXAMPLES = {
    "probe": f"""examples:
  auditor probe --base-url {URL}
  auditor probe --base-url {URL} --model my-model --provider vllm""",
    "run": f"""examples:
  auditor run --base-url {URL} --model M --dataset mmlu/test --limit 50 --out runs/m1
  auditor run --base-url {URL} --model M --dataset mmlu/test --items 400 --sequential \\
      --max-tokens 2000000 --out runs/spot          # a spot check that stops once the answer is clear
  auditor run ... --control-run runs/base --fail-on-leak --quiet   # CI: exit 1 on leakage""",
    "datasets": """examples:
  auditor datasets
  auditor run --base-url http://127.0.0.1:8000/v1 --model M --dataset mmlu --out runs/m1""",
    "plan": """examples:
  auditor plan --dataset mmlu                             # items and tokens for 10% leaked at 80% power
  auditor plan --dataset mmlu --leaked-fraction 0.2 --power 0.9 --reference --json""",
    "estimate": f"""examples:
  auditor estimate --base-url {URL} --model M --dataset mmlu/test --items 400
  auditor estimate --base-url {URL} --model M --dataset mmlu/test --max-tokens 2000000 --json""",
}


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = Parser(prog="auditor", description=DESCRIPTION, epilog=EXIT_CODES_HELP, formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"auditor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        epilog = f"{EXAMPLES[name]}\n\n{EXIT_CODES_HELP}"
        return sub.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=raw)

    endpoint_options(command("probe", "check that an endpoint returns usable prompt log-probabilities"))
    audit_options(command("run", "audit a model on a benchmark and write report.json, report.md and report.html"))
    audit_options(command("estimate", "what `run` with the same flags would cost, before any scoring request"),
                  estimate=True)  # fmt: skip
    command("datasets", "list the benchmark samples shipped with auditor (--dataset NAME)")
    plan_options(command("plan", "items and tokens needed to detect a leaked fraction, before anything is spent"))
    compare_parser(sub)
    grid_parser(sub)

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
        return exit_.code if isinstance(exit_.code, int) else ExitCode.USAGE
    debug = os.environ.get("AUDITOR_DEBUG") == "1"
    terminated: list[int] = []
    try:
        commands = {"probe": probe_command, "run": run_command, "estimate": estimate_command, "demo": demo_command,
                    "plan": plan_command}  # fmt: skip
        command = {**commands, "compare": compare_command, "grid": grid_command}.get(args.command, datasets_command)
        with audit_collector():  # auditor/run/collector.py: ~20% less CPU in a large audit
            return int(asyncio.run(_terminable(command(args), terminated)))
    except CapabilityError as err:
        print(f"auditor: endpoint cannot be audited: {redact(str(err), _secrets(args))}", file=sys.stderr)
        return err.exit_code
    except AuditorError as err:
        if debug:
            traceback.print_exc()
        print(f"auditor: error: {redact(str(err), _secrets(args))}", file=sys.stderr)
        return err.exit_code
    except AuditInterrupted as stop:
        print_outcome(stop.outcome, as_json=getattr(args, "json", False))
        print(
            f"auditor: {_how(terminated)}; the partial report above covers what was scored. Scored prompts are"
            " cached: re-run the same command to resume.",
            file=sys.stderr,
        )
        if getattr(args, "fail_on_leak", False) and stop.outcome.report.summary.verdict is Verdict.LEAKAGE:
            return ExitCode.LEAKAGE
        return ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"auditor: {_how(terminated)}; scored prompts are cached: re-run the same command to resume",
              file=sys.stderr)  # fmt: skip
        return ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED
    except Exception as err:  # a bug: still one line unless debugging
        if debug:
            traceback.print_exc()
        print(
            f"auditor: internal error: {type(err).__name__}: {redact(str(err), _secrets(args))}"
            " (set AUDITOR_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL


if __name__ == "__main__":
    sys.exit(main())

"""Command line: `auditor probe`, `auditor estimate` and `auditor run`. The only place that prints or exits.

Domain errors become one line on stderr and an exit code (2 bad input, 3 cache, 4 endpoint);
set AUDITOR_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx

from auditor import __version__
from auditor.endpoint.config import EndpointConfig, endpoint_secrets, http_client
from auditor.endpoint.prices import price_for
from auditor.endpoint.probe import AUTO, HOSTED, DialectRow, ProbeResult, detect, probe, refusal
from auditor.endpoint.secrets import redact
from auditor.errors import AuditorError, CapabilityError, EndpointError, UsageError
from auditor.run.audit import AuditInterrupted, AuditOutcome, run_audit, summary_line
from auditor.run.estimate import estimate, render
from auditor.run.plan import AuditConfig
from auditor.scoring.budget import Limits
from auditor.scoring.cache import DEFAULT_PATH, ScoreCache, put_probe
from providers.base import provider_names


def _endpoint_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint")
    g.add_argument("--base-url", required=True, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--model", default="", help="model id as the server names it (default: the only one served)")
    g.add_argument(
        "--provider",
        default="auto",
        choices=["auto", *provider_names()],
        help="endpoint dialect (default: detected by probing)",
    )
    g.add_argument("--api-key-env", metavar="NAME", help="read the API key from this environment variable")
    g.add_argument("--api-key-file", metavar="PATH", type=Path, help="read the API key from this file")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    g.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (recorded in the report)")
    g.add_argument("--cache", type=Path, default=DEFAULT_PATH, help=f"SQLite cache (default {DEFAULT_PATH})")


class _Parser(argparse.ArgumentParser):
    """Bad flags end with one line and exit code 2, like every other input error."""

    def error(self, message: str) -> NoReturn:
        print(f"auditor: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def _audit_options(run: argparse.ArgumentParser, *, estimate: bool = False) -> None:
    """`run`'s flags; `estimate` takes the same ones (less --out) so one command line prices the other."""
    _endpoint_options(run)
    d = run.add_argument_group("audit")
    d.add_argument("--dataset", type=Path, required=True, help="benchmark file or directory")
    if not estimate:
        d.add_argument("--out", type=Path, required=True, help="directory for report.json and report.md")
    d.add_argument("--limit", type=int, help="use the first N items (files sorted by name, rows in order)")
    d.add_argument(
        "--items", type=int, dest="sample", metavar="N", help="a seeded, subject-stratified sample of N items (--seed)"
    )
    d.add_argument("--template", default="paper", help="paper (default), mmlu, or a JSON template file")
    d.add_argument("--max-orderings", type=int, default=120, help="all n! orderings up to this many, else a sample")
    d.add_argument(
        "--orderings",
        default="all",
        metavar="DESIGN",
        help="which orderings to score: all (default), sample:K (or K), cyclic, paper-r, pairs",
    )
    d.add_argument("--seed", type=int, default=0, help="seed for sampled orderings (default 0)")
    v = run.add_argument_group("verdicts")
    v.add_argument(
        "--method",
        default="auditor",
        choices=("auditor", "paper-a", "paper-b"),
        help="auditor (default, calibrated), or the reference rules paper-a / paper-b (uncalibrated)",
    )
    v.add_argument(
        "--control-run",
        type=Path,
        metavar="DIR",
        help="a run of a clean reference model or clean items: the null for thresholds and tests",
    )
    v.add_argument(
        "--exclude-order-sensitive",
        action="store_true",
        help="drop items whose options read naturally in one order (all of the above, sorted numbers...)",
    )
    v.add_argument("--alpha", type=float, default=0.05, help="item-level false-positive rate (default 0.05)")
    d.add_argument("--skip-invalid", action="store_true", help="skip and count invalid items instead of stopping")
    b = run.add_argument_group("budgets (hard limits, never exceeded; cached prompts are free)")
    b.add_argument("--max-tokens", type=int, metavar="N", help="prompt + generated tokens, as the server counts them")
    b.add_argument("--max-requests", type=int, metavar="N", help="scoring requests, retries included")
    b.add_argument("--max-cost", type=float, metavar="USD", help="needs a price: --price-per-mtok or a known model")
    b.add_argument("--max-time", type=float, metavar="SECONDS", help="wall time for scoring")
    b.add_argument("--price-per-mtok", type=float, metavar="USD", help="price per million tokens, for --max-cost")
    q = run.add_argument_group("sequential spot check")
    q.add_argument(
        "--sequential",
        action="store_true",
        help="score items in a seeded random order and stop once an always-valid test decides",
    )
    q.add_argument(
        "--tolerance",
        type=float,
        default=0.10,
        help="with --sequential: stop with 'no evidence' once the leaked fraction is surely below this (default 0.1)",
    )
    q.add_argument(
        "--keep-order-sensitive",
        action="store_true",
        help="with --sequential: keep order-sensitive items (left out by default: their published order is natural)",
    )
    s = run.add_argument_group("scheduling")
    s.add_argument("--batch-size", type=int, default=24, help="prompts per request (default 24)")
    s.add_argument("--concurrency", type=int, default=8, help="requests in flight per endpoint (default 8)")
    s.add_argument("--retry-failed", action="store_true", help="re-send prompts that failed for good in an earlier run")
    s.add_argument("--attempts", type=int, default=6, help="tries per request before a prompt is failed")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="auditor", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"auditor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("probe", help="check that an endpoint returns usable prompt log-probabilities")
    _endpoint_options(pr)

    run = sub.add_parser("run", help="audit a model on a benchmark and write report.json / report.md")
    _audit_options(run)

    est = sub.add_parser("estimate", help="what `run` with the same flags would cost, before any scoring request")
    _audit_options(est, estimate=True)
    est.add_argument("--json", action="store_true", help="print the estimate as JSON")
    return parser


def _endpoint(args: argparse.Namespace) -> EndpointConfig:
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    return EndpointConfig(
        base_url=args.base_url.rstrip("/"),
        model=args.model,
        provider=args.provider,
        api_key_env=args.api_key_env,
        api_key_file=args.api_key_file,
        timeout=args.timeout,
        insecure=args.insecure,
    )


async def _probe(args: argparse.Namespace) -> int:
    """Print which dialects answer with usable prompt logprobs; exit 0 only when one does."""
    ep = _endpoint(args)
    with ScoreCache(args.cache) as cache:
        async with http_client(ep) as client:
            if ep.provider == AUTO:
                result, table = await detect(client, base_url=ep.base_url, model=ep.model, exhaustive=True)
            else:
                result, table = await detect_one(client, ep)
            for row in table:
                print(f"{row.provider:<20} {'usable' if row.usable else 'no':<7} {row.detail}")
            if result is None:
                raise refusal(ep.base_url, table)
            put_probe(cache, endpoint=ep.base_url, model=ep.model, provider=ep.provider, result=result.to_json())
    info = result.info
    rows = [
        ("endpoint", info.base_url),
        ("model", info.model),
        ("server", f"{info.server or '?'} {info.server_version or ''}".strip()),
        ("max model length", str(info.max_model_len or "?")),
        ("dialect", f"{result.provider} (use --provider {result.provider} to skip detection)"),
        ("prompt logprobs", f"complete and aligned ({result.n_tokens} tokens)"),
        ("max_tokens", f"{result.max_tokens}" + (" (the generated token is dropped)" if result.max_tokens else "")),
        ("verdict", "usable"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


async def detect_one(client: Any, ep: EndpointConfig) -> tuple[ProbeResult | None, list[DialectRow]]:
    try:
        result = await probe(client, provider=ep.provider, base_url=ep.base_url, model=ep.model)
    except EndpointError as err:
        return None, [DialectRow(ep.provider, False, str(err))]
    return result, [DialectRow(ep.provider, True, f"{result.n_tokens} prompt tokens, complete and aligned")]


def _progress() -> tuple[Any, Any, Any]:
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


def _config(args: argparse.Namespace) -> AuditConfig:
    """The audit configuration from `run`'s (or `estimate`'s) flags."""
    for name in ("batch_size", "concurrency", "attempts"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.price_per_mtok is None:  # a known hosted model's price (by --provider, or by the host with auto)
        host = httpx.URL(args.base_url).host
        args.price_per_mtok = price_for(HOSTED.get(host, "") if args.provider == AUTO else args.provider, args.model)
    return AuditConfig(
        endpoint=_endpoint(args),
        dataset=args.dataset,
        out=getattr(args, "out", None) or Path("."),
        cache_path=args.cache,
        limit=args.limit,
        sample=args.sample,
        template=args.template,
        max_orderings=args.max_orderings,
        seed=args.seed,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        skip_invalid=args.skip_invalid,
        attempts=args.attempts,
        retry_failed=args.retry_failed,
        method=args.method,
        control_run=args.control_run,
        exclude_order_sensitive=args.exclude_order_sensitive,
        alpha=args.alpha,
        orderings=args.orderings,
        limits=Limits(
            tokens=args.max_tokens,
            requests=args.max_requests,
            cost=args.max_cost,
            seconds=args.max_time,
            price_per_mtok=args.price_per_mtok,
        ),
        sequential=args.sequential,
        tolerance=args.tolerance,
        keep_order_sensitive=args.keep_order_sensitive,
    )


async def _run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    start, advance, close = _progress()
    try:
        outcome = await run_audit(cfg, on_start=start, on_progress=advance)
    finally:
        close()
    _print_outcome(outcome)
    return 0


async def _estimate(args: argparse.Namespace) -> int:
    result = await estimate(_config(args))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(render(result))
    return 0


def _print_outcome(outcome: AuditOutcome) -> None:
    st = outcome.stats
    secs = max(outcome.seconds, 1e-9)
    n_items = outcome.report.data["summary"]["n_items"] + outcome.report.data["summary"]["n_failed"]
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


def _secrets(args: argparse.Namespace) -> tuple[str, ...]:
    try:
        return endpoint_secrets(_endpoint(args))
    except AuditorError:
        return ()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a bad flag (already reported in one line)
        return exit_.code if isinstance(exit_.code, int) else 2
    debug = os.environ.get("AUDITOR_DEBUG") == "1"
    try:
        command = {"probe": _probe, "run": _run, "estimate": _estimate}[args.command]
        return asyncio.run(command(args))
    except CapabilityError as err:
        print(f"auditor: endpoint cannot be audited: {redact(str(err), _secrets(args))}", file=sys.stderr)
        return err.exit_code
    except AuditorError as err:
        if debug:
            traceback.print_exc()
        print(f"auditor: error: {redact(str(err), _secrets(args))}", file=sys.stderr)
        return err.exit_code
    except AuditInterrupted as stop:
        _print_outcome(stop.outcome)
        print(
            "auditor: interrupted; the partial report above covers what was scored. Scored prompts are cached:"
            " re-run the same command to resume.",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print("auditor: interrupted; scored prompts are cached: re-run the same command to resume", file=sys.stderr)
        return 130
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

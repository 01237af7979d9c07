"""The command line's option groups, and the one place where flags become configuration objects."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from auditor.analysis.assess import METHODS
from auditor.api import AuditOptions, audit_settings, endpoint
from auditor.endpoint.config import EndpointConfig
from auditor.errors import UsageError
from auditor.run.config import AuditConfig
from auditor.scoring.cache import DEFAULT_PATH
from providers.base import provider_names


def endpoint_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint")
    g.add_argument(
        "--base-url",
        action="append",
        metavar="URL",
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1; leave it out to score with a model"
        " loaded in this process (--provider local). Repeat it for replicas of one model: one audit spread"
        " over them, one cache",
    )
    g.add_argument(
        "--replicas-file",
        metavar="PATH",
        type=Path,
        help="more replicas of the model: a file of base URLs, one per line (# comments)",
    )
    g.add_argument(
        "--model",
        default="",
        help="model id as the server names it (default: the only one served); with --provider local a model"
        " directory, a .gguf file, or smollm2 (the small embedded default)",
    )
    g.add_argument(
        "--provider",
        default="auto",
        choices=["auto", *provider_names()],
        help="endpoint dialect (default: detected by probing)",
    )
    g.add_argument("--api-key-env", metavar="NAME", help="read the API key from this environment variable")
    g.add_argument("--api-key-file", metavar="PATH", type=Path, help="read the API key from this file")
    g.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds for one whole request: connect, first byte and the full answer (default 120)",
    )
    g.add_argument(
        "--max-response-mb",
        type=float,
        metavar="MB",
        help="refuse answers larger than this, on the wire or decompressed (default: 8 MB + 256 bytes per byte sent)",
    )
    g.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (recorded in the report)")
    g.add_argument("--cache", type=Path, default=DEFAULT_PATH, help=f"SQLite cache (default {DEFAULT_PATH})")


class Parser(argparse.ArgumentParser):
    """Bad flags end with one line and exit code 2, like every other input error."""

    def error(self, message: str) -> NoReturn:
        print(f"auditor: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def audit_options(run: argparse.ArgumentParser, *, estimate: bool = False) -> None:
    """`run`'s flags; `estimate` takes the same ones (less --out) so one command line prices the other."""
    endpoint_options(run)
    d = run.add_argument_group("audit")
    d.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="a bundled benchmark by name (mmlu, arc-challenge, ...: see `auditor datasets`), or a file or directory",
    )
    if estimate:
        d.add_argument("--out", type=Path, help="accepted so one command line serves run and estimate; not used")
    else:
        d.add_argument("--out", type=Path, required=True, help="directory for report.json and report.md")
        d.add_argument(
            "--force",
            action="store_true",
            help="replace a report of another audit (other endpoint, model or dataset) found in --out",
        )
    d.add_argument(
        "--limit",
        type=int,
        help="the first N items (files by name, rows in order): a prefix, not a sample; prefer --items N",
    )
    d.add_argument("--items", type=int, metavar="N", help="a seeded, subject-stratified sample of N items (--seed)")
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
        choices=METHODS,
        help="auditor (default, calibrated), or the reference rules paper-a / paper-b (uncalibrated)",
    )
    v.add_argument(
        "--control-run",
        type=Path,
        action="append",
        metavar="DIR",
        help="a run of a clean reference model on the same items: each item is paired with its reference scores"
        " (repeat for several references: a sharper null)",
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
    i = run.add_argument_group("score impact and results")
    i.add_argument(
        "--accuracy",
        action="store_true",
        help="also score each item the way evaluation harnesses do (2 prompts per option) and report accuracy"
        " on flagged and unflagged items",
    )
    if not estimate:
        i.add_argument(
            "--export-clean",
            type=Path,
            metavar="DIR",
            help="write the unflagged items to DIR in the input's format and as JSONL, with a manifest",
        )
        i.add_argument(
            "--results-db",
            type=Path,
            metavar="PATH",
            help="SQLite results database every run is recorded in (default: results.sqlite beside the cache)",
        )
    s = run.add_argument_group("scheduling")
    s.add_argument("--batch-size", type=int, default=24, help="prompts per request (default 24)")
    s.add_argument("--concurrency", type=int, default=8, help="requests in flight per endpoint (default 8)")
    s.add_argument("--retry-failed", action="store_true", help="re-send prompts that failed for good in an earlier run")
    s.add_argument("--attempts", type=int, default=6, help="tries per request before a prompt is failed")
    o = run.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print the summary as one JSON document on stdout")
    if not estimate:
        o.add_argument("--quiet", action="store_true", help="no progress bar; one closing line (for CI logs)")
        o.add_argument("--fail-on-leak", action="store_true", help="exit 1 when the verdict is leakage")


def endpoint_config(args: argparse.Namespace) -> EndpointConfig:
    return endpoint(base_urls(args), model=args.model, provider=args.provider, api_key_env=args.api_key_env,
                    api_key_file=args.api_key_file, timeout=args.timeout, insecure=args.insecure,
                    max_response_mb=args.max_response_mb)  # fmt: skip


def base_urls(args: argparse.Namespace) -> list[str]:
    """--base-url's values, then --replicas-file's lines."""
    urls = list(args.base_url or [])
    path: Path | None = getattr(args, "replicas_file", None)
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--replicas-file {path}: cannot read it ({err})") from None
        found = [ln.split("#", 1)[0].strip() for ln in lines]
        if not any(found):
            raise UsageError(f"--replicas-file {path}: no URL in it (one base URL per line)")
        urls += [u for u in found if u]
    return urls


def audit_config(args: argparse.Namespace) -> AuditConfig:
    """The audit configuration from `run`'s (or `estimate`'s) flags: the Python API's options, same names."""
    options = {k: getattr(args, k) for k in AuditOptions.__annotations__ if hasattr(args, k)}
    return audit_settings(endpoint_config(args), args.dataset, out=getattr(args, "out", None), cache=args.cache,
                          **options)  # fmt: skip

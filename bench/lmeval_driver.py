"""lm-evaluation-harness's local-completions client on the bench's prompts (run in .venv-lmeval).

    .venv-lmeval/bin/python bench/lmeval_driver.py --base-url URL --model M --tokenizer DIR \
        --prompts FILE [--concurrency 8] [--batch-size 24] [--limit N]

FILE is JSON lines, `[text, span_start]` per prompt: each prompt becomes one loglikelihood request with
context = the text before the scored span and continuation = the rest (lm-eval scores the continuation,
the audit scores the span). `LocalCompletionsAPI` (lm-eval 0.4.13) tokenizes with the Hugging Face
tokenizer in DIR and sends token ids, `echo` + `logprobs`, `num_concurrent` = --concurrency,
`batch_size` = --batch-size: its own request path, retries and parsing, as `lm_eval --model
local-completions` runs them. Imports nothing from this repository. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--tokenizer", required=True, help="a Hugging Face tokenizer directory")
    p.add_argument("--prompts", required=True)
    p.add_argument("--limit", type=int)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=24)
    args = p.parse_args()
    logging.disable(logging.WARNING)

    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    t0 = time.perf_counter()
    requests = []
    with open(args.prompts, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if args.limit is not None and n >= args.limit:
                break
            text, start = json.loads(line)
            requests.append(
                Instance(request_type="loglikelihood", doc={}, arguments=(text[:start], text[start:]), idx=n)
            )
    lm = LocalCompletionsAPI(
        base_url=f"{args.base_url.rstrip('/')}/completions",
        model=args.model,
        tokenizer_backend="huggingface",
        tokenizer=args.tokenizer,
        num_concurrent=args.concurrency,
        batch_size=args.batch_size,
        max_retries=3,
        tokenized_requests=True,
    )
    t1 = time.perf_counter()
    results = lm.loglikelihood(requests, disable_tqdm=True)
    t2 = time.perf_counter()
    ok = sum(1 for lp, _ in results if isinstance(lp, float) and math.isfinite(lp))
    json.dump({"prompts": ok, "requested": len(requests), "setup_seconds": t1 - t0, "seconds": t2 - t1}, sys.stdout)
    print()


if __name__ == "__main__":
    main()

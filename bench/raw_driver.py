"""The floor a client can reach: batches of prompts to vLLM's prompt-logprobs route, json.loads, nothing else.

    python -m bench.raw_driver --base-url URL --model M --prompts FILE [--concurrency 8] [--batch-size 24]

FILE is JSON lines, `[text, span_start]` per prompt (bench/throughput.py writes it). The prompts are read
as they are sent (never all held), cut into requests of `--batch-size` in file order, sent by
`--concurrency` workers over one httpx.AsyncClient with the auditor's connection limits; each answer is
parsed with json.loads and its choices counted. No validation, no cache, no retries: what is left is
the HTTP and JSON cost that any client pays. Prints one JSON line: prompts, requests, seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def batches(path: Path, size: int, limit: int | None) -> Iterator[list[str]]:
    batch: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if limit is not None and n >= limit:
                break
            batch.append(json.loads(line)[0])
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


async def drive(args: argparse.Namespace) -> dict[str, float]:
    work = batches(args.prompts, args.batch_size, args.limit)
    url = f"{args.base_url.rstrip('/')}/completions"
    counts = {"prompts": 0, "requests": 0}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=10.0), limits=limits) as client:

        async def worker() -> None:
            for prompts in work:
                body = {"model": args.model, "prompt": prompts, "prompt_logprobs": 0, "max_tokens": 1,
                        "temperature": 0, "return_token_ids": True}  # fmt: skip
                response = await client.post(url, json=body)
                response.raise_for_status()
                counts["prompts"] += len(json.loads(response.content)["choices"])
                counts["requests"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        seconds = time.perf_counter() - t0
    return {**counts, "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--prompts", type=Path, required=True)
    p.add_argument("--limit", type=int, help="the first N prompts of the file")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=24)
    out = asyncio.run(drive(p.parse_args()))
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()

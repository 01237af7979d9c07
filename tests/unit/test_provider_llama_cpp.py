"""The llama-cpp-python adapter on payloads recorded from its 0.3.36 server; llama-server's refusal."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
import respx

from auditor.errors import AlignmentError, CapabilityError, HTTPStatusError, ResponseFormatError, TransportError
from providers.llama_cpp import LlamaCppPython, detect_llama_cpp_server, parse_llama_cpp
from providers.openai_completions import OpenAICompletions, looks_like_llama_cpp_python
from tests.conftest import load_fixture

BASE = "http://llama.test/v1"
REC = "llama-cpp-python-0.3.36"
PROMPT = "The capital of France is Paris. The capital of Germany is"


def test_forced_bos_payload_matches_raw_logits() -> None:
    """--kv_overrides add_bos_token=true: BOS counted in usage (13) but not echoed (12 + generated)."""
    data = load_fixture(f"{REC}/smollm2_forcebos_max_tokens_1.json")
    assert data["usage"]["prompt_tokens"] == 13 and len(data["choices"][0]["logprobs"]["tokens"]) == 13
    r = parse_llama_cpp(data, PROMPT)
    assert len(r.tokens) == 12 and r.tokens[-1] == " is"  # generated " Berlin" dropped
    assert "".join(r.tokens) == PROMPT and r.offsets[1] == 3
    rows = load_fixture(f"{REC}/smollm2_forcebos_compare_inprocess.json")["0"]["rows"]
    assert [row["tok"] for row in rows] == list(r.tokens)
    assert r.logprobs[1:] == pytest.approx([row["correct"] for row in rows[1:]], abs=1e-5)


def test_gemma_payload_is_aligned_as_is() -> None:
    data = load_fixture(f"{REC}/gemma3_max_tokens_1_logprobs_0.json")
    r = parse_llama_cpp(data, PROMPT)
    assert len(r.tokens) == 12 and r.logprobs[0] is None


def test_shifted_smollm2_payload_is_refused_with_the_fix() -> None:
    """add_bos_token=false: logprobs belong to the next token; the tell is the missing generated token."""
    data = load_fixture(f"{REC}/smollm2_max_tokens_1.json")
    rows = load_fixture(f"{REC}/smollm2_compare_inprocess.json")["0"]
    assert rows["max_abs_diff_vs_correct"] > 1  # the recorded payload really is wrong
    with pytest.raises(ResponseFormatError, match="add_bos_token=bool:true"):
        parse_llama_cpp(data, PROMPT)


def _set(d: Any, key: Any, value: Any) -> None:
    d[key] = value


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: _set(d["usage"], "prompt_tokens", 14), "counted 14 prompt tokens but echoed 12"),
        (lambda d: _set(d["usage"], "prompt_tokens", 11), "counted 11"),
        (lambda d: _set(d["choices"][0]["logprobs"]["token_logprobs"], 4, None), "null logprob at token 4"),
        (lambda d: d["choices"][0]["logprobs"]["token_logprobs"].pop(), "13 tokens but 12 logprobs"),
        (lambda d: _set(d["choices"][0], "logprobs", None), "--logits_all true"),
        (lambda d: d["choices"].append(d["choices"][0]), "expected 1 choice, got 2"),
    ],
)
def test_every_broken_payload_is_an_error_never_a_zero(mutate: Any, message: str) -> None:
    data = copy.deepcopy(load_fixture(f"{REC}/smollm2_forcebos_max_tokens_1.json"))
    mutate(data)
    with pytest.raises(ResponseFormatError, match=message):
        parse_llama_cpp(data, PROMPT)


def test_echo_of_another_prompt_is_an_alignment_error() -> None:
    data = load_fixture(f"{REC}/smollm2_forcebos_max_tokens_1.json")
    with pytest.raises(AlignmentError):
        parse_llama_cpp(data, "The capital of Spain is Madrid.")


@respx.mock
async def test_request_shape_one_prompt_max_tokens_always_1() -> None:
    data = load_fixture(f"{REC}/smollm2_forcebos_max_tokens_1.json")
    route = respx.post(f"{BASE}/completions").mock(return_value=httpx.Response(200, json=data))
    async with httpx.AsyncClient() as client:
        adapter = LlamaCppPython(client, base_url=BASE, model="smollm2-bos", max_tokens=0)
        [r] = await adapter.score([PROMPT])
        assert len(r.tokens) == 12 and route.call_count == 1
        assert json.loads(route.calls.last.request.content) == {
            "model": "smollm2-bos",
            "prompt": PROMPT,
            "echo": True,
            "logprobs": 0,
            "max_tokens": 1,
            "temperature": 0,
        }
        assert adapter.max_prompts_per_request == 1
        assert adapter.scoring_params()["dialect"] == "llama-cpp-python"
        with pytest.raises(ValueError, match="one prompt per request"):
            await adapter.score([PROMPT, PROMPT])

        # a list of prompts is a 500 with an empty message on this server (recorded): mapped, not hidden
        route.mock(return_value=httpx.Response(500, json=load_fixture(f"{REC}/smollm2_list_of_2_prompts.json")))
        with pytest.raises(HTTPStatusError) as info:
            await adapter.score([PROMPT])
        assert info.value.status == 500 and not isinstance(info.value, CapabilityError)


@respx.mock
async def test_llama_server_echo_refusal_becomes_a_capability_error_at_once() -> None:
    rec = load_fixture("llama-server-documented/echo_refused.json")
    assert "not recorded" in rec["source"]
    route = respx.post(f"{BASE}/completions").mock(return_value=httpx.Response(500, json=rec["response"]))
    async with httpx.AsyncClient() as client:
        with pytest.raises(CapabilityError, match="llama-server") as info:
            await LlamaCppPython(client, base_url=BASE, model="m").score([PROMPT])
    assert route.call_count == 1  # a CapabilityError is never retried by the scheduler
    assert isinstance(info.value.__cause__, HTTPStatusError)


def test_detect_llama_cpp_server() -> None:
    refusal = HTTPStatusError("Only no echo is supported", status=400, endpoint=BASE)
    found = detect_llama_cpp_server(refusal)
    assert isinstance(found, CapabilityError) and "Only no echo is supported" in str(found) and BASE in str(found)
    in_body = HTTPStatusError("server_error", status=500, body='{"error":{"message":"Only no echo is supported"}}')
    assert detect_llama_cpp_server(in_body) is not None
    assert detect_llama_cpp_server(HTTPStatusError("max_tokens too large", status=400)) is None
    assert detect_llama_cpp_server(TransportError("reset")) is None
    assert detect_llama_cpp_server(ValueError("Only no echo is supported")) is None


@respx.mock
async def test_describe_names_the_server() -> None:
    models = {"object": "list", "data": [{"id": "smollm2-bos", "object": "model", "owned_by": "me", "permissions": []}]}
    respx.get(f"{BASE}/models").mock(return_value=httpx.Response(200, json=models))
    respx.get("http://llama.test/version").mock(return_value=httpx.Response(404))
    async with httpx.AsyncClient() as client:
        info = await LlamaCppPython(client, base_url=BASE, model="smollm2-bos").describe()
    assert (info.model, info.server, info.server_version) == ("smollm2-bos", "llama-cpp-python", None)


@respx.mock
async def test_generic_dialect_refuses_a_llama_cpp_python_server() -> None:
    """Seen on a real llama-cpp-python 0.3.36 serving SmolLM2 without the BOS override: openai-completions
    (max_tokens 0) accepted the shifted echo. Its /models entry names the server: the generic dialect steps aside."""
    models = {"object": "list", "data": [{"id": "smollm2", "object": "model", "owned_by": "me", "permissions": []}]}
    respx.get(f"{BASE}/models").mock(return_value=httpx.Response(200, json=models))
    respx.get("http://llama.test/version").mock(return_value=httpx.Response(404))
    async with httpx.AsyncClient() as client:
        with pytest.raises(CapabilityError, match="--provider llama-cpp-python"):
            await OpenAICompletions(client, base_url=BASE, model="smollm2").describe()
        info = await LlamaCppPython(client, base_url=BASE, model="smollm2").describe()
    assert info.server == "llama-cpp-python"
    vllm_entry = {"id": "m", "object": "model", "owned_by": "vllm", "root": "/m", "max_model_len": 512}
    assert not looks_like_llama_cpp_python(vllm_entry)

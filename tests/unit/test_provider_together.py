"""The Together adapter on its documented response shape (values from the vLLM SmolLM2 recordings)."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
import respx

from auditor.errors import AlignmentError, ModelNotServed, ResponseFormatError
from providers.together import Together, parse_together
from tests.conftest import load_fixture

BASE = "https://together.test/v1"


def _rec() -> tuple[dict[str, Any], str]:
    rec = load_fixture("together-api-documented/completion_echo.json")
    assert "not recorded" in rec["source"]
    return copy.deepcopy(rec["response"]), rec["request"]["prompt"]


def test_prompt_logprobs_from_the_top_level_prompt_list() -> None:
    resp, prompt = _rec()
    r = parse_together(resp, prompt)
    assert len(r.tokens) == 45 and "".join(r.tokens) == prompt and r.logprobs[0] is None
    assert r.token_ids == tuple(resp["prompt"][0]["logprobs"]["token_ids"])
    assert r.tokens[-1] == "\n"  # the generated "E" lives in choices and is never scored


def test_token_ids_are_optional() -> None:
    resp, prompt = _rec()
    del resp["prompt"][0]["logprobs"]["token_ids"]
    assert parse_together(resp, prompt).token_ids is None


def _set(d: Any, key: Any, value: Any) -> None:
    d[key] = value


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("prompt"), "top-level 'prompt' missing"),
        (lambda r: _set(r["prompt"][0], "logprobs", None), "no tokens/token_logprobs"),
        (lambda r: r["prompt"][0]["logprobs"]["token_logprobs"].pop(), "45 tokens but 44 logprobs"),
        (lambda r: _set(r["prompt"][0]["logprobs"]["token_logprobs"], 9, None), "null logprob at token 9"),
        (lambda r: _set(r["prompt"][0]["logprobs"], "token_ids", "198 11933"), "token_ids must be a list"),
        (lambda r: r["prompt"][0]["logprobs"]["token_ids"].pop(), "44 token ids for 45 tokens"),
        (lambda r: _set(r["usage"], "prompt_tokens", 46), "counted 46"),
    ],
)
def test_every_broken_payload_is_an_error_never_a_zero(mutate: Any, message: str) -> None:
    resp, prompt = _rec()
    mutate(resp)
    with pytest.raises(ResponseFormatError, match=message):
        parse_together(resp, prompt)


def test_generated_tokens_inside_the_prompt_logprobs_are_refused() -> None:
    resp, prompt = _rec()
    lp = resp["prompt"][0]["logprobs"]
    lp["tokens"].append("E")
    lp["token_logprobs"].append(-0.75)
    lp["token_ids"].append(53)
    with pytest.raises(AlignmentError, match="left over"):
        parse_together(resp, prompt)


@pytest.mark.parametrize("max_tokens", [0, 1])
@respx.mock
async def test_request_shape(max_tokens: int) -> None:
    resp, prompt = _rec()
    route = respx.post(f"{BASE}/completions").mock(return_value=httpx.Response(200, json=resp))
    async with httpx.AsyncClient() as client:
        adapter = Together(client, base_url=BASE, model="smollm2", max_tokens=max_tokens)
        [r] = await adapter.score([prompt])
        with pytest.raises(ValueError, match="one prompt per request"):
            await adapter.score([prompt, prompt])
    assert len(r.tokens) == 45 and route.call_count == 1 and adapter.max_prompts_per_request == 1
    assert json.loads(route.calls.last.request.content) == {
        "model": "smollm2",
        "prompt": prompt,
        "echo": True,
        "logprobs": 1,
        "max_tokens": max_tokens,
        "temperature": 0,
    }


@respx.mock
async def test_describe_reads_the_bare_model_list() -> None:
    models = [
        {"id": "meta-llama/Llama-3-8b-hf", "object": "model", "created": 1, "type": "language", "context_length": 8192},
        {"id": "smollm2", "object": "model", "created": 2, "type": "language", "context_length": 2048},
    ]
    route = respx.get(f"{BASE}/models").mock(return_value=httpx.Response(200, json=models))
    async with httpx.AsyncClient() as client:
        info = await Together(client, base_url=BASE, model="smollm2").describe()
        assert (info.model, info.server, info.max_model_len, info.extra) == (
            "smollm2",
            "together",
            2048,
            {"type": "language"},
        )
        with pytest.raises(ModelNotServed, match="not served"):
            await Together(client, base_url=BASE, model="").describe()  # many served: a model must be named
        route.mock(return_value=httpx.Response(200, json={"object": "list", "data": models}))
        assert (await Together(client, base_url=BASE, model="smollm2").describe()).max_model_len == 2048

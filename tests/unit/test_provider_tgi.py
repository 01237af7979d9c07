"""The TGI /generate adapter on documented-shape payloads (values from the vLLM SmolLM2 recordings)."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
import respx

from auditor.errors import CapabilityError, HTTPStatusError, ModelNotServed, ResponseFormatError
from providers.tgi import NO_PREFILL, TGI, parse_tgi
from tests.conftest import load_fixture

DOC = "tgi-3-documented"
ROOT = "http://tgi.test"


def _rec(name: str = "generate_prefill.json") -> tuple[dict[str, Any], str]:
    rec = load_fixture(f"{DOC}/{name}")
    assert "not recorded" in rec["source"]
    return copy.deepcopy(rec["response"]), rec["request"]["inputs"]


def test_prefill_is_the_prompt_generated_token_apart() -> None:
    resp, prompt = _rec()
    r = parse_tgi(resp, prompt)
    assert len(r.tokens) == 45 and "".join(r.tokens) == prompt
    assert r.logprobs[0] is None and all(isinstance(v, float) for v in r.logprobs[1:])
    assert r.token_ids is not None and r.token_ids[:3] == (198, 11933, 260)
    assert r.tokens[-1] == "\n"  # details.tokens (the generated "E") is never scored


def test_chinese_prefill_aligns() -> None:
    resp, prompt = _rec("generate_chinese.json")
    r = parse_tgi(resp, prompt)
    assert len(r.tokens) == 105 and r.offsets[-1] == len(prompt) - 1


def test_list_wrapped_result_is_accepted() -> None:
    resp, prompt = _rec()
    assert parse_tgi([resp], prompt) == parse_tgi(resp, prompt)


def test_empty_prefill_is_a_capability_error_never_a_score() -> None:
    resp, prompt = _rec("generate_no_prefill.json")
    with pytest.raises(CapabilityError) as info:
        parse_tgi(resp, prompt)
    assert NO_PREFILL in str(info.value)
    assert NO_PREFILL == "TGI returned no prefill logprobs: start TGI with --enable-prefill-logprobs"


def _set(d: Any, key: Any, value: Any) -> None:
    d[key] = value


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("details"), "no details.prefill"),
        (lambda r: _set(r["details"]["prefill"], 3, None), "must be objects"),
        (lambda r: _set(r["details"]["prefill"][3], "logprob", None), "null logprob at token 3"),
        (lambda r: _set(r["details"]["prefill"][3], "logprob", "nan"), "not a finite number"),
        (lambda r: _set(r["details"]["prefill"][3], "text", None), "token strings missing"),
        (lambda r: _set(r["details"]["prefill"][3], "id", None), "token ids must be integers"),
    ],
)
def test_every_broken_payload_is_an_error_never_a_zero(mutate: Any, message: str) -> None:
    resp, prompt = _rec()
    mutate(resp)
    with pytest.raises(ResponseFormatError, match=message):
        parse_tgi(resp, prompt)


@respx.mock
async def test_request_shape_one_prompt_at_the_root() -> None:
    resp, prompt = _rec()
    route = respx.post(f"{ROOT}/generate").mock(return_value=httpx.Response(200, json=resp))
    async with httpx.AsyncClient() as client:
        adapter = TGI(client, base_url=f"{ROOT}/v1", model="tgi", max_tokens=0)
        [r] = await adapter.score([prompt])
        assert len(r.tokens) == 45 and route.call_count == 1
        assert json.loads(route.calls.last.request.content) == {
            "inputs": prompt,
            "parameters": {"max_new_tokens": 1, "decoder_input_details": True, "details": True},
        }
        assert adapter.max_prompts_per_request == 1
        with pytest.raises(ValueError, match="one prompt per request"):
            await adapter.score([prompt, prompt])

        route.mock(return_value=httpx.Response(200, json=_rec("generate_no_prefill.json")[0]))
        with pytest.raises(CapabilityError, match="--enable-prefill-logprobs"):
            await adapter.score([prompt])

        err = load_fixture(f"{DOC}/error_422.json")
        route.mock(return_value=httpx.Response(422, json=err["response"]))
        with pytest.raises(HTTPStatusError, match="Input validation error") as info:
            await adapter.score([prompt])
        assert info.value.status == 422


@respx.mock
async def test_describe_reads_info() -> None:
    info_json = load_fixture(f"{DOC}/info.json")["response"]
    route = respx.get(f"{ROOT}/info").mock(return_value=httpx.Response(200, json=info_json))
    async with httpx.AsyncClient() as client:
        for model in ("", "tgi", "HuggingFaceTB/SmolLM2-135M-Instruct"):
            info = await TGI(client, base_url=ROOT, model=model).describe()
            assert (info.model, info.server, info.server_version, info.max_model_len) == (
                "HuggingFaceTB/SmolLM2-135M-Instruct",
                "tgi",
                "3.3.4",
                4095,
            )
        with pytest.raises(ModelNotServed, match="not served"):
            await TGI(client, base_url=ROOT, model="other/model").describe()
        route.mock(return_value=httpx.Response(200, json={"version": "3.3.4"}))
        with pytest.raises(ResponseFormatError, match="no model_id"):
            await TGI(client, base_url=ROOT, model="").describe()

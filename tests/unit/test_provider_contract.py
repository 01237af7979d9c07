"""What every registered adapter promises: the common constructor and shape, one HTTP request per
score() call whatever happens, and transport/HTTP trouble mapped onto auditor.errors."""

from __future__ import annotations

import inspect
import json

import httpx
import pytest
import respx

from auditor.errors import HTTPStatusError, ResponseFormatError, TransportError
from providers.base import provider_class, provider_names
from providers.chat_only import explain_chat_only

BASE = "http://ep.test/v1"
ADAPTERS = ["openai-completions", "vllm", "sglang", "tgi", "llama-cpp-python", "together", "fireworks", "openai"]


def test_registry_lists_every_adapter() -> None:
    # "local" scores in this process (no HTTP): tests/unit/test_provider_local.py
    assert sorted([*ADAPTERS, "local"]) == provider_names()


@pytest.mark.parametrize("name", ADAPTERS)
async def test_common_shape(name: str) -> None:
    cls = provider_class(name)
    params = inspect.signature(cls).parameters
    assert list(params)[:5] == ["client", "base_url", "model", "max_tokens", "batch_size"]
    assert all(p.kind is p.KEYWORD_ONLY for p in list(params.values())[1:])
    assert params["max_tokens"].default == 0 and params["batch_size"].default == 24
    async with httpx.AsyncClient() as client:
        adapter = cls(client, base_url=BASE + "/", model="m", max_tokens=1, batch_size=7)
        with pytest.raises(ValueError, match="max_tokens"):
            cls(client, base_url=BASE, model="m", max_tokens=2)
    assert adapter.name == name and adapter.base_url == BASE and adapter.model == "m"
    assert 1 <= adapter.max_prompts_per_request <= 7
    scoring = adapter.scoring_params()
    assert scoring["dialect"] == name and json.loads(json.dumps(scoring, sort_keys=True)) == scoring
    assert "max_tokens" not in scoring  # the generated token is never scored: not part of the answer
    assert inspect.iscoroutinefunction(adapter.score) and inspect.iscoroutinefunction(adapter.describe)


FAILURES = [
    (httpx.Response(400, json={"error": {"message": "bad request: nope"}}), HTTPStatusError, "nope"),
    (
        httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"message": "slow down"}}),
        HTTPStatusError,
        "slow",
    ),
    (httpx.Response(503, text="overloaded"), HTTPStatusError, "503"),
    (httpx.ConnectError("refused"), TransportError, "ConnectError"),
    (httpx.ReadTimeout("slow"), TransportError, "timed out"),
    (httpx.Response(200, content=b"{truncated"), ResponseFormatError, "invalid JSON"),
    (httpx.Response(200, json={"unexpected": True}), ResponseFormatError, None),
]


@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize(("outcome", "error", "message"), FAILURES)
@respx.mock
async def test_failures_are_mapped_and_sent_once(
    name: str, outcome: httpx.Response | Exception, error: type[Exception], message: str | None
) -> None:
    kwargs = {"side_effect": outcome} if isinstance(outcome, Exception) else {"return_value": outcome}
    route = respx.post(url__startswith="http://ep.test/").mock(**kwargs)
    async with httpx.AsyncClient() as client:
        adapter = provider_class(name)(client, base_url=BASE, model="m")
        with pytest.raises(error, match=message) as info:
            await adapter.score(["Question:\nA:x\n"])
    assert route.call_count == 1  # retries belong to the scheduler, never to an adapter
    if isinstance(info.value, HTTPStatusError) and info.value.status == 429:
        assert info.value.retry_after == 7.0


def test_chat_only_explanation_is_one_paragraph() -> None:
    text = explain_chat_only()
    assert "\n" not in text and len(text) > 200
    for needed in ("prompt", "log-probabilities", "chat", "echo", "vLLM"):
        assert needed in text

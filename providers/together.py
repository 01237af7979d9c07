"""Together AI completions with echo: prompt logprobs in a top-level `prompt` list.

Request: `{"model", "prompt": str, "echo": true, "logprobs": 1, "max_tokens": 0 | 1, "temperature": 0}`,
one prompt per request (the API's `prompt` is a string). `logprobs: 1`, not 0: older versions of the
API defined logprobs as a 0/1 switch, where 0 meant "none".

Response (documented shape, togethercomputer/openapi `openapi.yaml`, CompletionResponse/PromptPart,
not recorded): `{"prompt": [{"text", "logprobs": {"tokens", "token_logprobs", "token_ids"}}],
"choices": [...], "usage": {...}}`. The generated tokens are in `choices`, apart from the prompt's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from providers._common import ListsModels, bad_for, build_record, check_usage
from providers.base import LogprobRecord, request_json


class Together(ListsModels):
    name = "together"
    server_name = "together"
    version_route = None
    context_key = "context_length"
    extra_key = "type"

    @property
    def max_prompts_per_request(self) -> int:
        return 1

    def scoring_params(self) -> dict[str, Any]:
        return {"dialect": self.name, "echo": True, "logprobs": 1, "temperature": 0}

    def request_body(self, prompts: Sequence[str]) -> dict[str, Any]:
        (prompt,) = prompts  # one prompt per request
        return {
            "model": self.model,
            "prompt": prompt,
            "echo": True,
            "logprobs": 1,
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        if len(prompts) != 1:
            raise ValueError(f"together scores one prompt per request, got {len(prompts)}")
        url, body = f"{self.base_url}/completions", self.request_body(prompts)
        data = await request_json(self._client, "POST", url, endpoint=self.base_url, json=body)
        return [parse_together(data, prompts[0], endpoint=self.base_url)]


def parse_together(data: Any, prompt: str, *, endpoint: str | None = None) -> LogprobRecord:
    """One validated record from the top-level `prompt[0].logprobs`."""
    bad = bad_for(endpoint)
    parts = data.get("prompt") if isinstance(data, dict) else None
    if not isinstance(parts, list) or len(parts) != 1 or not isinstance(parts[0], dict):
        raise bad("no prompt logprobs in the response (top-level 'prompt' missing: echo+logprobs unsupported here?)")
    lp = parts[0].get("logprobs")
    if (
        not isinstance(lp, dict)
        or not isinstance(lp.get("tokens"), list)
        or not isinstance(lp.get("token_logprobs"), list)
    ):
        raise bad("prompt 0: prompt[0].logprobs has no tokens/token_logprobs")
    ids = lp.get("token_ids")
    if ids is not None and not isinstance(ids, list):
        raise bad("prompt 0: token_ids must be a list")
    record = build_record(
        lp["tokens"], lp["token_logprobs"], prompt, where="prompt 0", endpoint=endpoint, token_ids=ids
    )
    check_usage(data, len(record.tokens), bad)
    return record

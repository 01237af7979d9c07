"""Generic OpenAI-compatible `/v1/completions` with `echo: true` (vLLM, SGLang, llama-cpp-python...).

Request: `{"model", "prompt": [..], "echo": true, "logprobs": 0, "max_tokens": 0, "temperature": 0}`.
`max_tokens: 0` scores the prompt without generating; servers that refuse it are driven with
`max_tokens: 1` (decided by the probe) and the generated token is dropped during alignment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from auditor.errors import CapabilityError
from providers._common import ListsModels, bad_for, build_record, check_usage, ordered_choices
from providers.base import EndpointInfo, LogprobRecord, request_json

LLAMA_CPP_PYTHON_HINT = (
    "this is llama-cpp-python's server (GET /models: owned_by 'me'); use its dialect, --provider llama-cpp-python:"
    " the generic one cannot see its one-token shift for GGUFs with add_bos_token=false, and max_tokens 0"
    " generates until the context is full there"
)


def looks_like_llama_cpp_python(entry: dict[str, Any]) -> bool:
    """llama-cpp-python 0.3's GET /models entry: `owned_by: "me"` and a `permissions` list."""
    return entry.get("owned_by") == "me" and isinstance(entry.get("permissions"), list)


class OpenAICompletions(ListsModels):
    name = "openai-completions"
    refuses_llama_cpp_python = True  # seen with a real llama-cpp-python 0.3.36: shifted logprobs accepted

    @property
    def max_prompts_per_request(self) -> int:
        return self._batch_size

    def scoring_params(self) -> dict[str, Any]:
        # max_tokens is not part of the answer: the generated token is dropped.
        return {"dialect": self.name, "echo": True, "logprobs": 0, "temperature": 0}

    def request_body(self, prompts: Sequence[str]) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": list(prompts) if len(prompts) != 1 else prompts[0],
            "echo": True,
            "logprobs": 0,
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }

    async def describe(self) -> EndpointInfo:
        info, entry = await self.describe_entry()
        if self.refuses_llama_cpp_python and looks_like_llama_cpp_python(entry):
            raise CapabilityError(LLAMA_CPP_PYTHON_HINT, endpoint=self.base_url)
        owned = entry.get("owned_by")
        return dataclasses.replace(info, server=str(owned) if owned else None)

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        data = await request_json(
            self._client,
            "POST",
            f"{self.base_url}/completions",
            endpoint=self.base_url,
            json=self.request_body(prompts),
        )
        return parse_completions(data, prompts, endpoint=self.base_url)


def parse_completions(data: Any, prompts: Sequence[str], *, endpoint: str | None = None) -> list[LogprobRecord]:
    """Turn an echo+logprobs completions response into one record per prompt, validated."""
    bad = bad_for(endpoint)
    choices = ordered_choices(data, len(prompts), bad)
    records = [_parse_choice(c, p, i, endpoint) for i, (c, p) in enumerate(zip(choices, prompts, strict=True))]
    check_usage(data, sum(len(r.tokens) for r in records), bad)
    return records


def _parse_choice(choice: dict[str, Any], prompt: str, i: int, endpoint: str | None) -> LogprobRecord:
    bad = bad_for(endpoint)
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        raise bad(f"prompt {i}: no logprobs in the response (does the server support echo+logprobs?)")
    tokens, values = lp.get("tokens"), lp.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
        raise bad(f"prompt {i}: tokens and token_logprobs are missing or of different lengths")
    # max_tokens 1 (servers that refuse 0) echoes the generated token after the prompt: dropped
    return build_record(tokens, values, prompt, where=f"prompt {i}", endpoint=endpoint, generated_tail=True)

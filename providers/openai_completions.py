"""Generic OpenAI-compatible `/v1/completions` with `echo: true` (vLLM, SGLang, llama-cpp-python...).

Request: `{"model", "prompt": [..], "echo": true, "logprobs": 0, "max_tokens": 0, "temperature": 0}`.
`max_tokens: 0` scores the prompt without generating; servers that refuse it are driven with
`max_tokens: 1` (decided by the probe) and the generated token is dropped during alignment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from auditor.errors import AlignmentError, CapabilityError, ResponseFormatError
from auditor.prompts.align import place_tokens
from providers._common import ordered_choices
from providers.base import Adapter, EndpointInfo, LogprobRecord, request_json

LLAMA_CPP_PYTHON_HINT = (
    "this is llama-cpp-python's server (GET /models: owned_by 'me'); use its dialect, --provider llama-cpp-python:"
    " the generic one cannot see its one-token shift for GGUFs with add_bos_token=false, and max_tokens 0"
    " generates until the context is full there"
)


def looks_like_llama_cpp_python(entry: dict[str, Any]) -> bool:
    """llama-cpp-python 0.3's GET /models entry: `owned_by: "me"` and a `permissions` list."""
    return entry.get("owned_by") == "me" and isinstance(entry.get("permissions"), list)


class OpenAICompletions(Adapter):
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
        data = await request_json(self._client, "GET", f"{self.base_url}/models", endpoint=self.base_url)
        models = data.get("data") if isinstance(data, dict) else None
        if not isinstance(models, list) or not models:
            raise ResponseFormatError("GET /models returned no models", endpoint=self.base_url)
        entry = next((m for m in models if isinstance(m, dict) and m.get("id") == self.model), None)
        if entry is None and not self.model and len(models) == 1 and isinstance(models[0], dict):
            entry = models[0]  # no --model given and the server serves exactly one
        if entry is None:
            names = ", ".join(str(m.get("id")) for m in models if isinstance(m, dict))
            raise ResponseFormatError(
                f"model {self.model!r} is not served here (served: {names})", endpoint=self.base_url
            )
        if self.refuses_llama_cpp_python and looks_like_llama_cpp_python(entry):
            raise CapabilityError(LLAMA_CPP_PYTHON_HINT, endpoint=self.base_url)
        owned = entry.get("owned_by")
        version = await self._server_version()
        return EndpointInfo(
            base_url=self.base_url,
            model=str(entry["id"]),
            server=str(owned) if owned else None,
            server_version=version,
            max_model_len=entry.get("max_model_len"),
            extra={"root": entry.get("root")} if entry.get("root") else {},
        )

    async def _server_version(self) -> str | None:
        root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        try:
            resp = await self._client.get(f"{root}/version")
            if resp.status_code == 200:
                version = resp.json().get("version")
                return str(version) if version else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return None

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

    def bad(msg: str) -> ResponseFormatError:
        return ResponseFormatError(msg, endpoint=endpoint)

    choices = ordered_choices(data, len(prompts), bad)
    records = [_parse_choice(c, p, i, bad) for i, (c, p) in enumerate(zip(choices, prompts, strict=True))]
    usage = data.get("usage") if isinstance(data, dict) else None
    reported = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    counted = sum(len(r.tokens) for r in records)
    if isinstance(reported, int) and reported != counted:
        raise bad(f"server counted {reported} prompt tokens but returned logprobs for {counted}")
    return records


def _parse_choice(choice: dict[str, Any], prompt: str, i: int, bad: Any) -> LogprobRecord:
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        raise bad(f"prompt {i}: no logprobs in the response (does the server support echo+logprobs?)")
    tokens, values = lp.get("tokens"), lp.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values):
        raise bad(f"prompt {i}: tokens and token_logprobs are missing or of different lengths")
    if not all(isinstance(t, str) for t in tokens):
        raise bad(f"prompt {i}: tokens must be strings")
    try:
        placed = place_tokens(tokens, prompt)
    except AlignmentError as err:
        raise AlignmentError(f"prompt {i}: {err}") from None
    n = placed.n_prompt_tokens
    logprobs: list[float | None] = []
    for k, v in enumerate(values[:n]):
        if v is None:
            if k != 0:
                raise bad(f"prompt {i}: null logprob at token {k} ({tokens[k]!r}); only the first may be null")
            logprobs.append(None)
        elif isinstance(v, int | float) and not isinstance(v, bool) and v == v:
            logprobs.append(float(v))
        else:
            raise bad(f"prompt {i}: logprob at token {k} is not a number ({v!r})")
    return LogprobRecord(
        tokens=tuple(tokens[:n]),
        logprobs=tuple(logprobs),
        offsets=tuple(placed.offsets),
        prompt_tokens=n,
    )

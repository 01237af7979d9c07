"""llama-cpp-python's server (`python -m llama_cpp.server --logits_all true`): completions with echo.

Request: `{"model", "prompt": str, "echo": true, "logprobs": 0, "max_tokens": 1, "temperature": 0}`,
one prompt per request (a list is a 500 there). `max_tokens` is always 1: 0 means "generate until the
context is full" on this server. The echoed generated token is dropped.

Two quirks, both seen with llama-cpp-python 0.3.36 (tests/fixtures/llama-cpp-python-0.3.36):

- BOS: `usage.prompt_tokens` counts the BOS token, which is not echoed, so it is one more than the
  echoed prompt tokens. Accepted.
- Shift: for a GGUF with `tokenizer.ggml.add_bos_token=false` (SmolLM2), every echoed logprob belongs
  to the next token (checked against raw logits), and the generated token is missing from the echo.
  That missing token is the tell: it is refused with the fix (restart with
  `--kv_overrides tokenizer.ggml.add_bos_token=bool:true`), never scored.

The C++ `llama-server` (llama.cpp proper) has no prompt logprobs: it refuses echo with "Only no echo
is supported". `detect_llama_cpp_server` turns that refusal into a CapabilityError.

Token counts: `POST /extras/tokenize {"input": str, "model"}` -> `{"tokens": [ids]}` (llama-cpp-python
0.3.36 `server/app.py`, TokenizeInputRequest/TokenizeInputResponse), one prompt per request. It calls
`Llama.tokenize(text, add_bos=True, special=True)`, which adds BOS (and EOS) exactly where the GGUF
asks; a completion's `usage.prompt_tokens` counts BOS/EOS by the same GGUF flags around the same
`special=True` tokenization, so the two agree, BOS included (it is the one token not echoed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from auditor.errors import CapabilityError, HTTPStatusError
from providers._common import bad_for, build_record, map_bounded, root_url
from providers.base import EndpointInfo, LogprobRecord, request_json
from providers.openai_completions import OpenAICompletions

LLAMA_SERVER_ECHO_REFUSAL = "Only no echo is supported"
# Short enough that the probe's one-line table (160 characters) keeps the fix.
SHIFT_FIX = (
    "shifted by one token (add_bos_token=false): restart llama-cpp-python with"
    " --kv_overrides tokenizer.ggml.add_bos_token=bool:true"
)


def detect_llama_cpp_server(err: BaseException) -> CapabilityError | None:
    """The C++ llama-server's refusal of echo (any status, it answers 500 or 400), as a CapabilityError."""
    if not isinstance(err, HTTPStatusError):
        return None
    if LLAMA_SERVER_ECHO_REFUSAL not in str(err) and LLAMA_SERVER_ECHO_REFUSAL not in err.body:
        return None
    return CapabilityError(
        'this is llama.cpp\'s llama-server, which refuses echo ("Only no echo is supported") and so returns no'
        " prompt logprobs; serve the GGUF with llama-cpp-python (python -m llama_cpp.server --logits_all true)"
        " or vLLM instead",
        endpoint=err.endpoint,
    )


class LlamaCppPython(OpenAICompletions):
    honours_max_tokens_zero = False  # 0 means "until the context is full" there
    refuses_llama_cpp_python = False
    name = "llama-cpp-python"
    tokenize_route = "/extras/tokenize"

    @property
    def max_prompts_per_request(self) -> int:
        return 1

    def scoring_params(self) -> dict[str, Any]:
        return {"dialect": self.name, "echo": True, "logprobs": 0, "temperature": 0}

    def request_body(self, prompts: Sequence[str]) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": prompts[0],
            "echo": True,
            "logprobs": 0,
            "max_tokens": 1,
            "temperature": 0,
        }

    async def describe(self) -> EndpointInfo:
        info = await super().describe()  # GET /models; llama-cpp-python has no /version
        return dataclasses.replace(info, server=self.name)

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        if len(prompts) != 1:
            raise ValueError(f"llama-cpp-python scores one prompt per request, got {len(prompts)}")
        try:
            url, body = f"{self.base_url}/completions", self.request_body(prompts)
            data = await request_json(self._client, "POST", url, endpoint=self.base_url, json=body)
        except HTTPStatusError as err:
            refusal = detect_llama_cpp_server(err)
            if refusal is not None:
                raise refusal from err
            raise
        return [parse_llama_cpp(data, prompts[0], endpoint=self.base_url)]

    async def count_tokens(self, prompts: Sequence[str], *, concurrency: int = 8) -> list[int] | None:
        url = f"{root_url(self.base_url)}/extras/tokenize"

        async def one(prompt: str) -> int:
            body: dict[str, Any] = {"input": prompt}
            if self.model:
                body["model"] = self.model
            data = await request_json(self._client, "POST", url, endpoint=self.base_url, json=body)
            return parse_llama_cpp_tokenize(data, endpoint=self.base_url)

        return await map_bounded(prompts, one, concurrency)


def parse_llama_cpp_tokenize(data: Any, *, endpoint: str | None = None) -> int:
    """The number of token ids in an `/extras/tokenize` answer."""
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        raise bad_for(endpoint)("POST /extras/tokenize: no list of token ids (is this llama-cpp-python?)")
    return len(tokens)


def parse_llama_cpp(data: Any, prompt: str, *, endpoint: str | None = None) -> LogprobRecord:
    """One validated record from an echo response to `max_tokens: 1`, generated token dropped."""
    bad = bad_for(endpoint)
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        raise bad(f"expected 1 choice, got {len(choices) if isinstance(choices, list) else 'no'}")
    lp = choices[0].get("logprobs")
    if (
        not isinstance(lp, dict)
        or not isinstance(lp.get("tokens"), list)
        or not isinstance(lp.get("token_logprobs"), list)
    ):
        raise bad("prompt 0: no echoed tokens/token_logprobs (was the server started with --logits_all true?)")
    tokens, values = lp["tokens"], lp["token_logprobs"]
    record = build_record(tokens, values, prompt, where="prompt 0", endpoint=endpoint, generated_tail=True)
    n = len(record.tokens)
    usage = data.get("usage") if isinstance(data, dict) else None
    generated = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if isinstance(generated, int) and generated >= 1 and len(tokens) == n:
        raise bad(SHIFT_FIX)
    counted = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if isinstance(counted, int) and counted not in (n, n + 1):  # n + 1: BOS counted, not echoed
        raise bad(f"server counted {counted} prompt tokens but echoed {n}")
    return record

"""vLLM's own prompt-logprobs dialect: `/v1/completions` with `prompt_logprobs` and token ids.

Request: `{"model", "prompt": [..], "prompt_logprobs": 0, "max_tokens": 1, "temperature": 0,
"return_token_ids": true}` (no echo). vLLM 0.32 refuses `prompt_logprobs` with `max_tokens: 0` (400),
so one token is always generated; it is not part of `prompt_logprobs` and never scored.

Response, per choice: `prompt_token_ids[i]` and `prompt_logprobs[i]`, a dict keyed by token-id strings
-> `{logprob, rank, decoded_token}`; position 0 is null. The entry for position i is the one keyed by
`prompt_token_ids[i]`, never the top-ranked one: with `prompt_logprobs: k > 0` the dict also carries
the top-k, and byte-level tokens that decode to '' collide if you key by text.

The first token has no entry, so its string is what remains of the prompt once the other tokens'
strings are taken off its end ('' when it is a special token such as BOS, or when that cannot be
determined; `place_tokens` then places it or refuses).

Token counts: `POST /tokenize` at the server root, `{"model", "prompt": str, "add_special_tokens":
true}` -> `{"count", "max_model_len", "tokens", "token_strs"}` (vLLM 0.32
`entrypoints/serve/tokenize/protocol.py`, TokenizeCompletionRequest/TokenizeResponse), one prompt per
request. `add_special_tokens` defaults to true there and in completions requests, so `count` includes
BOS exactly when the completions `usage.prompt_tokens` does (recorded: 12 and 12 with the tiny Llama's
`<s>`, 11 and 11 without; SmolLM2 adds none: 45 and 45).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from providers._common import (
    Bad,
    ListsModels,
    bad_for,
    build_record,
    check_usage,
    map_bounded,
    ordered_choices,
    root_url,
    token_count,
)
from providers.base import LogprobRecord, request_json

MAX_PROMPTS = 1024  # vLLM's default cap on a prompt list (VLLM_MAX_COMPLETION_PROMPTS)
_TOKEN, _LOGPROB = itemgetter("decoded_token"), itemgetter("logprob")


class VLLM(ListsModels):
    honours_max_tokens_zero = False
    name = "vllm"
    tokenize_route = "/tokenize"
    server_name = "vllm"

    @property
    def max_prompts_per_request(self) -> int:
        return max(1, min(self._batch_size, MAX_PROMPTS))

    def scoring_params(self) -> dict[str, Any]:
        return {"dialect": self.name, "prompt_logprobs": 0, "temperature": 0}

    def request_body(self, prompts: Sequence[str]) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": list(prompts),
            "prompt_logprobs": 0,
            "max_tokens": 1,
            "temperature": 0,
            "return_token_ids": True,
        }

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        url, body = f"{self.base_url}/completions", self.request_body(prompts)
        data = await request_json(self._client, "POST", url, endpoint=self.base_url, json=body)
        return parse_vllm(data, prompts, endpoint=self.base_url)

    async def count_tokens(self, prompts: Sequence[str], *, concurrency: int = 8) -> list[int] | None:
        url = f"{root_url(self.base_url)}/tokenize"

        async def one(prompt: str) -> int:
            body: dict[str, Any] = {"prompt": prompt, "add_special_tokens": True}
            if self.model:
                body["model"] = self.model
            data = await request_json(self._client, "POST", url, endpoint=self.base_url, json=body)
            return parse_vllm_tokenize(data, endpoint=self.base_url)

        return await map_bounded(prompts, one, concurrency)


def parse_vllm_tokenize(data: Any, *, endpoint: str | None = None) -> int:
    """`count` of a `/tokenize` answer, checked against `tokens` when the list is there."""
    bad = bad_for(endpoint)
    if not isinstance(data, dict) or "count" not in data:
        raise bad("POST /tokenize: no count in the response (is this vLLM?)")
    count = token_count(data["count"], "POST /tokenize", bad)
    tokens = data.get("tokens")
    if isinstance(tokens, list) and len(tokens) != count:
        raise bad(f"POST /tokenize: count {count} but {len(tokens)} tokens")
    return count


def parse_vllm(data: Any, prompts: Sequence[str], *, endpoint: str | None = None) -> list[LogprobRecord]:
    """One validated record per prompt from `prompt_logprobs` + `prompt_token_ids`."""
    bad = bad_for(endpoint)
    choices = ordered_choices(data, len(prompts), bad)
    records = [
        _parse_choice(c, p, f"prompt {i}", endpoint) for i, (c, p) in enumerate(zip(choices, prompts, strict=True))
    ]
    check_usage(data, sum(len(r.tokens) for r in records), bad)
    return records


def _parse_choice(choice: dict[str, Any], prompt: str, where: str, endpoint: str | None) -> LogprobRecord:
    bad = bad_for(endpoint)
    ids, entries = choice.get("prompt_token_ids"), choice.get("prompt_logprobs")
    if not isinstance(entries, list):
        raise bad(f"{where}: no prompt_logprobs in the response (is this vLLM?)")
    if not isinstance(ids, list):
        raise bad(f"{where}: no prompt_token_ids (the server ignored return_token_ids; use openai-completions)")
    if len(entries) != len(ids):
        raise bad(f"{where}: {len(entries)} prompt_logprobs entries for {len(ids)} prompt tokens")
    try:  # well-formed entries in C-level passes; anything odd takes the careful loop, which says what
        found = list(map(dict.__getitem__, entries[1:], map(str, ids[1:])))
        tokens: list[Any] = ["", *map(_TOKEN, found)]  # strings, checked in build_record
        values: list[Any] = [None, *map(_LOGPROB, found)]
    except (TypeError, KeyError):
        tokens, values = [""], [None]
        for k in range(1, len(ids)):
            entry = _entry_for(entries[k], ids[k], k, where, bad)
            tokens.append(entry.get("decoded_token"))
            values.append(entry.get("logprob"))
    if entries and entries[0] is not None:  # not seen on vLLM 0.32; scored like any other position if sent
        first = _entry_for(entries[0], ids[0], 0, where, bad)
        values[0] = first.get("logprob")
    if set(map(type, tokens[1:])) <= {str} and prompt.endswith(rest := "".join(tokens[1:])):
        tokens[0] = prompt[: len(prompt) - len(rest)]
    return build_record(tokens, values, prompt, where=where, endpoint=endpoint, token_ids=ids)


def _entry_for(entry: Any, token_id: Any, k: int, where: str, bad: Bad) -> dict[str, Any]:
    if entry is None:
        raise bad(f"{where}: null prompt_logprobs entry at token {k}; only the first may be null")
    if not isinstance(entry, dict):
        raise bad(f"{where}: prompt_logprobs entry {k} is not an object")
    found = entry.get(str(token_id))
    if not isinstance(found, dict):
        raise bad(f"{where}: prompt_logprobs entry {k} has no logprob for the prompt's token id {token_id!r}")
    return found

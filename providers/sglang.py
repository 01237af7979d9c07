"""SGLang's native `/generate` with input-token logprobs.

Request (server root, not /v1): `{"text": [..], "return_logprob": true, "logprob_start_len": 0,
"return_text_in_logprobs": true, "sampling_params": {"max_new_tokens": 0 | 1, "temperature": 0}}`.
`logprob_start_len: 0` asks for the whole prompt (a larger value would let the radix cache serve the
first tokens unscored). `max_new_tokens` follows the probe: 0 when accepted, else 1; generated tokens
come back in `output_token_logprobs`, apart from the prompt's, and are never scored.

Response: a list with one object per prompt, in order; `meta_info.input_token_logprobs` is a list of
`[logprob, token_id, text]`, the first logprob null, and `meta_info.prompt_tokens` counts them.

SGLang decodes each token on its own (`batch_decode` of single ids): byte-level BPE pieces of one
character come back as U+FFFD, which `place_tokens` handles; SentencePiece tokenizers (Llama 2,
Mistral) lose the leading space of a word that way, so such prompts fail alignment (AlignmentError)
rather than being scored wrongly: use `openai-completions` against SGLang's `/v1/completions` there.

Token counts: `POST /v1/tokenize` (recent SGLang; `/tokenize` is an alias in newer ones)
`{"model", "prompt": [..], "add_special_tokens": true}` -> `{"tokens": [[..]], "count": [..],
"max_model_len"}` (sglang `entrypoints/openai/serving_tokenize.py`, protocol TokenizeRequest /
TokenizeResponse; a list prompt gives lists). It calls `tokenizer.encode(text, add_special_tokens=True)`,
the same HF call `/generate` makes on `text` (whose `meta_info.prompt_tokens` counts the result), so
the counts agree. Older SGLang answers 404 (no tokenize route). Documented shape, not recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from providers._common import (
    ListsModels,
    bad_for,
    build_record,
    map_bounded,
    root_url,
    token_count,
)
from providers.base import LogprobRecord, request_json

TOKENIZE_BATCH = 64  # prompts per /v1/tokenize request (it takes a list)


class SGLang(ListsModels):
    name = "sglang"
    tokenize_route = "/v1/tokenize"
    server_name = "sglang"
    models_route = "/v1/models"  # below the server root (native routes)
    version_route = "/get_server_info"

    def models_url(self) -> str:
        return f"{root_url(self.base_url)}{self.models_route}"

    def scoring_params(self) -> dict[str, Any]:
        return {"dialect": self.name, "logprob_start_len": 0, "temperature": 0}

    def request_body(self, prompts: Sequence[str]) -> dict[str, Any]:
        return {
            "text": list(prompts),
            "return_logprob": True,
            "logprob_start_len": 0,
            "return_text_in_logprobs": True,
            "sampling_params": {"max_new_tokens": self.max_tokens, "temperature": 0},
        }

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        url = f"{root_url(self.base_url)}/generate"
        data = await request_json(self._client, "POST", url, endpoint=self.base_url, json=self.request_body(prompts))
        return parse_sglang(data, prompts, endpoint=self.base_url)

    async def count_tokens(self, prompts: Sequence[str], *, concurrency: int = 8) -> list[int] | None:
        url = f"{root_url(self.base_url)}/v1/tokenize"
        batches = [list(prompts[i : i + TOKENIZE_BATCH]) for i in range(0, len(prompts), TOKENIZE_BATCH)]

        async def one(batch: list[str]) -> list[int]:
            body: dict[str, Any] = {"prompt": batch, "add_special_tokens": True}
            if self.model:
                body["model"] = self.model
            data = await request_json(self._client, "POST", url, endpoint=self.base_url, json=body)
            return parse_sglang_tokenize(data, len(batch), endpoint=self.base_url)

        return [n for counts in await map_bounded(batches, one, concurrency) for n in counts]


def parse_sglang_tokenize(data: Any, n: int, *, endpoint: str | None = None) -> list[int]:
    """The `n` counts of a `/v1/tokenize` answer to a list prompt, checked against `tokens` when there."""
    bad = bad_for(endpoint)
    counts = data.get("count") if isinstance(data, dict) else None
    if not isinstance(counts, list) or len(counts) != n:
        raise bad(f"POST /v1/tokenize: expected a list of {n} counts (is this SGLang?)")
    out = [token_count(c, f"POST /v1/tokenize, prompt {k}", bad) for k, c in enumerate(counts)]
    tokens = data.get("tokens")
    if isinstance(tokens, list) and (
        len(tokens) != n or any(not isinstance(t, list) or len(t) != c for t, c in zip(tokens, out, strict=False))
    ):
        raise bad("POST /v1/tokenize: tokens do not match the counts")
    return out


def parse_sglang(data: Any, prompts: Sequence[str], *, endpoint: str | None = None) -> list[LogprobRecord]:
    """One validated record per prompt from `meta_info.input_token_logprobs`."""
    bad = bad_for(endpoint)
    if isinstance(data, dict) and len(prompts) == 1:
        data = [data]  # a single prompt may come back unwrapped
    if not isinstance(data, list) or len(data) != len(prompts):
        got = len(data) if isinstance(data, list) else "no list of"
        raise bad(f"expected {len(prompts)} results, got {got}")
    return [_parse_one(item, prompts[i], f"prompt {i}", endpoint) for i, item in enumerate(data)]


def _parse_one(item: Any, prompt: str, where: str, endpoint: str | None) -> LogprobRecord:
    bad = bad_for(endpoint)
    meta = item.get("meta_info") if isinstance(item, dict) else None
    entries = meta.get("input_token_logprobs") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(entries, list):
        raise bad(f"{where}: no meta_info.input_token_logprobs (was return_logprob honoured?)")
    if not all(isinstance(e, list) and len(e) == 3 for e in entries):
        raise bad(f"{where}: input_token_logprobs entries must be [logprob, token_id, text]")
    counted = meta.get("prompt_tokens")
    if isinstance(counted, int) and counted != len(entries):
        raise bad(f"{where}: {len(entries)} scored entries for {counted} prompt tokens")
    if any(e[2] is None for e in entries):
        raise bad(f"{where}: token texts missing (return_text_in_logprobs ignored)")
    values = [e[0] for e in entries]
    tokens = [e[2] for e in entries]
    ids = [e[1] for e in entries]
    return build_record(tokens, values, prompt, where=where, endpoint=endpoint, token_ids=ids)

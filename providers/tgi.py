"""text-generation-inference: native `POST /generate` with `decoder_input_details`.

Request (server root): `{"inputs": prompt, "parameters": {"max_new_tokens": 1, "decoder_input_details":
true, "details": true}}`, one prompt per request (TGI's `/generate` takes one input; `max_new_tokens`
must be >= 1, and the generated token is reported apart, in `details.tokens`).

Response: `details.prefill = [{id, text, logprob}]`, the first logprob null (NaN on the server). Since
TGI 3.0 prefill logprobs are off unless the server was launched with `--enable-prefill-logprobs`, and
then `prefill` is silently `[]`: that is a CapabilityError, never a score.

Like SGLang, TGI decodes each prefill token on its own; SentencePiece tokenizers lose word-leading
spaces that way, and such prompts fail alignment rather than being scored wrongly.

Token counts: `POST /tokenize` (server root) takes the same request body as `/generate` and answers
one `{id, text, start, stop}` per token, special tokens included (TGI v3.3 `router/src/server.rs`
`tokenize`, `lib.rs` SimpleToken/TokenizeResponse). It runs the same validation tokenizer with the same
`add_special_tokens` (default true) as `/generate`, whose input length (`x-prompt-tokens`, usage
`prompt_tokens`) is that list's length. One prompt per request; a 404 means no fast tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditor.errors import CapabilityError, ModelNotServed
from providers._common import bad_for, build_record, map_bounded, root_url
from providers.base import EndpointInfo, LogprobRecord, Provider, request_json

NO_PREFILL = "TGI returned no prefill logprobs: start TGI with --enable-prefill-logprobs"
MODEL_ALIASES = ("", "tgi")  # TGI serves one model; its OpenAI routes call it "tgi"


class TGI(Provider):
    honours_max_tokens_zero = False
    name = "tgi"
    tokenize_route = "/tokenize"

    @property
    def max_prompts_per_request(self) -> int:
        return 1

    def scoring_params(self) -> dict[str, Any]:
        return {"dialect": self.name, "decoder_input_details": True}

    def request_body(self, prompts: Sequence[str]) -> dict[str, Any]:
        (prompt,) = prompts  # one prompt per request
        return {
            "inputs": prompt,
            "parameters": {"max_new_tokens": 1, "decoder_input_details": True, "details": True},
        }

    async def describe(self) -> EndpointInfo:
        data = await request_json(self._client, "GET", f"{root_url(self.base_url)}/info", endpoint=self.base_url)
        bad = bad_for(self.base_url)
        served = data.get("model_id") if isinstance(data, dict) else None
        if not isinstance(served, str) or not served:
            raise bad("GET /info returned no model_id (is this TGI?)")
        if self.model not in (*MODEL_ALIASES, served):
            raise ModelNotServed(f"model {self.model!r} is not served here (served: {served}); give --model {served}",
                                 endpoint=self.base_url)  # fmt: skip
        max_len = data.get("max_input_tokens", data.get("max_input_length"))
        version = data.get("version")
        return EndpointInfo(
            base_url=self.base_url,
            model=served,
            server="tgi",
            server_version=str(version) if version else None,
            max_model_len=max_len if isinstance(max_len, int) else None,
            extra={"sha": data["sha"]} if data.get("sha") else {},
        )

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        if len(prompts) != 1:
            raise ValueError(f"tgi scores one prompt per request, got {len(prompts)}")
        url = f"{root_url(self.base_url)}/generate"
        data = await request_json(self._client, "POST", url, endpoint=self.base_url, json=self.request_body(prompts))
        return [parse_tgi(data, prompts[0], endpoint=self.base_url)]

    async def count_tokens(self, prompts: Sequence[str], *, concurrency: int = 8) -> list[int] | None:
        url = f"{root_url(self.base_url)}/tokenize"

        async def one(prompt: str) -> int:
            data = await request_json(self._client, "POST", url, endpoint=self.base_url, json={"inputs": prompt})
            return parse_tgi_tokenize(data, endpoint=self.base_url)

        return await map_bounded(prompts, one, concurrency)


def parse_tgi_tokenize(data: Any, *, endpoint: str | None = None) -> int:
    """The number of tokens in a `/tokenize` answer (a list of `{id, text, start, stop}`)."""
    if not isinstance(data, list) or not all(isinstance(t, dict) and isinstance(t.get("id"), int) for t in data):
        raise bad_for(endpoint)("POST /tokenize: expected a list of {id, text, start, stop} (is this TGI?)")
    return len(data)


def parse_tgi(data: Any, prompt: str, *, endpoint: str | None = None) -> LogprobRecord:
    """One validated record from `details.prefill`; an empty prefill is a CapabilityError."""
    bad = bad_for(endpoint)
    if isinstance(data, list) and len(data) == 1:
        data = data[0]  # some deployments wrap the single result in a list
    details = data.get("details") if isinstance(data, dict) else None
    prefill = details.get("prefill") if isinstance(details, dict) else None
    if not isinstance(prefill, list):
        raise bad("no details.prefill in the response (were details and decoder_input_details honoured?)")
    if not prefill:
        raise CapabilityError(NO_PREFILL, endpoint=endpoint)
    if not all(isinstance(p, dict) for p in prefill):
        raise bad("details.prefill entries must be objects {id, text, logprob}")
    tokens = [p.get("text") for p in prefill]
    values = [p.get("logprob") for p in prefill]
    ids = [p.get("id") for p in prefill]
    return build_record(tokens, values, prompt, where="prompt 0", endpoint=endpoint, token_ids=ids)

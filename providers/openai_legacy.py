"""OpenAI's legacy completions (`davinci-002`, `babbage-002`) through the `openai` SDK.

Only these two models return prompt logprobs (echo + logprobs <= 5); chat models and
`gpt-3.5-turbo-instruct` do not. The SDK runs with `max_retries=0` over our httpx client, so the
scheduler's retry policy is the only one, and its errors are mapped onto `auditor.errors`:
APIStatusError -> HTTPStatusError (with Retry-After), APIConnectionError/APITimeoutError ->
TransportError.

Authentication: the httpx client already carries the Authorization header. The SDK insists on an
api key and would send `Bearer <key>` over the client's header, so without an explicit `api_key`
the SDK's header is omitted on each request and the client's is the one that goes out.

Tokens that are not whole UTF-8 characters are echoed as `bytes:\\xe5\\x86`-style strings; they
become U+FFFD pieces, which `place_tokens` treats as parts of one character.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import httpx

from auditor.errors import HTTPStatusError, ResponseFormatError, TransportError, UsageError

try:
    import openai
except ImportError as _err:  # pragma: no cover - openai is a dependency of auditor
    raise UsageError("the openai provider needs the openai SDK: pip install openai") from _err
from providers.base import LogprobRecord, parse_retry_after
from providers.openai_completions import OpenAICompletions, parse_completions

BYTES_TOKEN = re.compile(r"bytes:\s?(\\x[0-9a-fA-F]{2})+")


class OpenAILegacy(OpenAICompletions):
    name = "openai"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        model: str,
        max_tokens: int = 0,
        batch_size: int = 24,
        api_key: str | None = None,
    ) -> None:
        super().__init__(client, base_url=base_url, model=model, max_tokens=max_tokens, batch_size=batch_size)
        self._own_key = api_key is not None
        self._sdk = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key or "unused",
            max_retries=0,
            http_client=client,  # type: ignore[arg-type]  # the SDK accepts httpx and httpx2 clients
        )

    def scoring_params(self) -> dict[str, Any]:
        return {**super().scoring_params(), "dialect": self.name}

    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        body = self.request_body(prompts)
        headers = None if self._own_key else {"Authorization": openai.Omit()}
        try:
            raw = await self._sdk.completions.with_raw_response.create(
                model=body["model"],
                prompt=body["prompt"],
                echo=True,
                logprobs=body["logprobs"],
                max_tokens=body["max_tokens"],
                temperature=0,
                extra_headers=headers,
            )
        except openai.APIStatusError as err:
            raise _status_error(err, self.base_url) from err
        except openai.APITimeoutError as err:
            raise TransportError("timed out (APITimeoutError)", endpoint=self.base_url, timeout=True) from err
        except openai.APIConnectionError as err:
            cause = err.__cause__ or err
            raise TransportError(f"{type(cause).__name__}: {cause}", endpoint=self.base_url) from err
        try:
            data = raw.http_response.json()
        except ValueError as err:
            n = len(raw.http_response.content)
            raise ResponseFormatError(f"invalid JSON in response ({n} bytes)", endpoint=self.base_url) from err
        return parse_openai_legacy(data, prompts, endpoint=self.base_url)


def _status_error(err: openai.APIStatusError, endpoint: str) -> HTTPStatusError:
    body = err.body
    message = body.get("message") if isinstance(body, dict) else None
    response = err.response
    return HTTPStatusError(
        str(message or err.message)[:300],
        status=int(err.status_code),
        endpoint=endpoint,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        body=response.text[:2000],
    )


def normalize_bytes_tokens(data: Any) -> Any:
    """A copy of the response with `bytes:\\x..` tokens replaced by U+FFFD (pieces of one character)."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return data
    choices = []
    for choice in data["choices"]:
        lp = choice.get("logprobs") if isinstance(choice, dict) else None
        if isinstance(lp, dict) and isinstance(lp.get("tokens"), list):
            tokens = ["\ufffd" if isinstance(t, str) and BYTES_TOKEN.fullmatch(t) else t for t in lp["tokens"]]
            choice = {**choice, "logprobs": {**lp, "tokens": tokens}}
        choices.append(choice)
    return {**data, "choices": choices}


def parse_openai_legacy(data: Any, prompts: Sequence[str], *, endpoint: str | None = None) -> list[LogprobRecord]:
    return parse_completions(normalize_bytes_tokens(data), prompts, endpoint=endpoint)

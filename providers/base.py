"""The provider seam: the logprob record, the endpoint description, the `Provider` base class, the registry.

A provider knows its wire format and nothing else: it builds a request, parses the response into
`LogprobRecord`s, and maps transport and HTTP errors onto `auditor.errors`. Retries, caching,
concurrency and budgets live in the scheduler.
"""

from __future__ import annotations

import abc
import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from auditor.errors import UsageError
from providers.http import parse_retry_after as parse_retry_after  # one exchange, bounded: see there
from providers.http import request_json as request_json

# A log-probability is finite and at most 0. Servers round (half-precision softmax), so up to this much
# above 0 is rounding of a 0; anything more is a broken or hostile server, never a score.
LOGPROB_ROUNDING = 1e-3


def logprob_problem(value: object, k: int) -> str | None:
    """Why `value` cannot be token k's log-probability, or None (position 0 may be null: no context)."""
    if value is None:
        return None if k == 0 else f"null logprob at token {k}; only the first may be null"
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return f"logprob at token {k} is not a finite number ({value!r})"
    if value > LOGPROB_ROUNDING:
        return f"logprob at token {k} is above 0 ({value!r}): not a log-probability"
    return None


@dataclass(frozen=True)
class LogprobRecord:
    """Teacher-forced log-probabilities of one prompt's tokens.

    `offsets[i]` is the character offset of token i in the prompt text (already corrected for
    servers that count special tokens the text does not contain). `logprobs[0]` may be None (no
    context for the first token); every other entry is a float.
    """

    tokens: tuple[str, ...]
    logprobs: tuple[float | None, ...]
    offsets: tuple[int, ...]
    token_ids: tuple[int, ...] | None = None
    prompt_tokens: int | None = None  # as the server counted them (usage), when reported

    @property
    def counted_tokens(self) -> int:
        """The prompt's tokens as budgets and spend count them: the server's count, else the tokens returned."""
        return self.prompt_tokens if self.prompt_tokens is not None else len(self.tokens)

    def problem(self) -> str | None:
        """Why this record cannot be a score (lengths that differ, a logprob that is not one), or None."""
        if not len(self.tokens) == len(self.logprobs) == len(self.offsets) or not self.tokens:
            return f"{len(self.tokens)} tokens, {len(self.logprobs)} logprobs, {len(self.offsets)} offsets"
        if self.token_ids is not None and len(self.token_ids) != len(self.tokens):
            return f"{len(self.token_ids)} token ids for {len(self.tokens)} tokens"
        return next(filter(None, (logprob_problem(v, k) for k, v in enumerate(self.logprobs))), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": list(self.tokens),
            "logprobs": list(self.logprobs),
            "offsets": list(self.offsets),
            "token_ids": None if self.token_ids is None else list(self.token_ids),
            "prompt_tokens": self.prompt_tokens,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogprobRecord:
        ids = data.get("token_ids")
        return cls(
            tokens=tuple(data["tokens"]),
            logprobs=tuple(None if v is None else float(v) for v in data["logprobs"]),
            offsets=tuple(int(v) for v in data["offsets"]),
            token_ids=None if ids is None else tuple(int(v) for v in ids),
            prompt_tokens=data.get("prompt_tokens"),
        )


@dataclass(frozen=True)
class EndpointInfo:
    base_url: str
    model: str  # the model id as the server names it
    server: str | None = None  # server software, when known
    server_version: str | None = None
    max_model_len: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Provider(abc.ABC):
    """One endpoint family's wire format for prompt log-probabilities: the one seam of the product.

    Required: `scoring_params`, `describe`, `score`. Optional abilities have defaults here and are
    overridden where the endpoint has them: `count_tokens` (with `tokenize_route`), and
    `generated_per_prompt` (from `honours_max_tokens_zero`). The constructor keeps the injected client
    and the endpoint and does no I/O.
    """

    name: ClassVar[str] = "provider"
    # False: the endpoint always generates one token (vLLM prompt_logprobs, TGI...), billed like a prompt token.
    honours_max_tokens_zero: ClassVar[bool] = True
    # The server route that `count_tokens` asks (root-relative), or None when the endpoint has none.
    tokenize_route: ClassVar[str | None] = None

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        model: str,
        max_tokens: int = 0,
        batch_size: int = 24,
    ) -> None:
        if max_tokens not in (0, 1):
            raise ValueError("max_tokens must be 0 or 1")
        self._client = client
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_tokens = max_tokens
        self._batch_size = batch_size

    @property
    def max_prompts_per_request(self) -> int:
        return max(1, self._batch_size)

    @abc.abstractmethod
    def scoring_params(self) -> dict[str, Any]:
        """Everything in a request, besides endpoint, model and prompt, that can change the answer."""

    @abc.abstractmethod
    def request_body(self, prompts: Sequence[str]) -> dict[str, Any]:
        """The JSON body of one scoring request for `prompts` (at most `max_prompts_per_request`)."""

    @abc.abstractmethod
    async def describe(self) -> EndpointInfo:
        """Ask the server who it is (model id as served, version). No scoring."""

    @abc.abstractmethod
    async def score(self, prompts: Sequence[str]) -> list[LogprobRecord]:
        """Score a batch of prompts in one request; raises EndpointError subclasses."""

    async def count_tokens(self, prompts: Sequence[str], *, concurrency: int = 8) -> list[int] | None:
        """Each prompt's token count exactly as the server counts it when scoring (its usage
        `prompt_tokens`, special tokens such as BOS included), from the server's own tokenize route,
        with at most `concurrency` requests in flight; None when the endpoint has no such route.
        Sends no scoring request; errors are mapped like `score`'s."""
        return None

    def identity(self, info: EndpointInfo) -> tuple[str, str]:
        """(endpoint, model) naming this endpoint's answers in cache keys: by default the base URL and the
        model id as served; an in-process model names them by its weights' digest, not its path."""
        return self.base_url, info.model

    def generated_per_prompt(self) -> int:
        """Tokens generated per prompt besides the echo (billed like prompt tokens; the token is dropped)."""
        return 1 if self.max_tokens == 1 or not self.honours_max_tokens_zero else 0


_REGISTRY = {
    "openai-completions": "providers.openai_completions:OpenAICompletions",
    "vllm": "providers.vllm:VLLM",
    "sglang": "providers.sglang:SGLang",
    "tgi": "providers.tgi:TGI",
    "llama-cpp-python": "providers.llama_cpp:LlamaCppPython",
    "together": "providers.together:Together",
    "fireworks": "providers.fireworks:Fireworks",
    "openai": "providers.openai_legacy:OpenAILegacy",
    "local": "providers.local:Local",
}


def provider_names() -> list[str]:
    return sorted(_REGISTRY)


def provider_class(name: str) -> type[Provider]:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown provider {name!r}; choose one of {', '.join(provider_names())}") from None
    module, attr = target.split(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"{target} is not a Provider")
    return cls

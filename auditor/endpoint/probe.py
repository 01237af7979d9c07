"""Can this endpoint be audited? Ask it who it is, then score one short known prompt.

The probe checks what the audit relies on: the model is served, prompt log-probabilities come
back for every prompt token (no nulls past the first), the tokens line up with the prompt text,
and whether `max_tokens: 0` is accepted (otherwise 1, with the generated token dropped).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import httpx

from auditor.errors import (
    CapabilityError,
    EndpointError,
    HTTPStatusError,
    ModelNotServed,
    ResponseFormatError,
    TransportError,
    Unreachable,
)
from auditor.scoring.retry import RetryPolicy
from providers.base import EndpointInfo, provider_class
from providers.chat_only import explain_chat_only

PROBE_PROMPT = "\nWhich planet is known as the red planet?:\nA:Venus\nB:Mars\nC:Jupiter \nD:Saturn\n"


@dataclass(frozen=True)
class ProbeResult:
    provider: str
    info: EndpointInfo
    max_tokens: int
    n_tokens: int
    first_logprob_null: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "info": asdict(self.info),
            "max_tokens": self.max_tokens,
            "n_tokens": self.n_tokens,
            "first_logprob_null": self.first_logprob_null,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeResult:
        return cls(
            provider=data["provider"],
            info=EndpointInfo(**data["info"]),
            max_tokens=int(data["max_tokens"]),
            n_tokens=int(data["n_tokens"]),
            first_logprob_null=bool(data["first_logprob_null"]),
        )


async def probe(
    client: httpx.AsyncClient, *, provider: str, base_url: str, model: str, policy: RetryPolicy | None = None
) -> ProbeResult:
    """Raise CapabilityError (with the reason) unless usable prompt logprobs come back.

    Transient trouble (429, 5xx, resets) is retried like any scoring request before giving up.
    """
    policy = policy or RetryPolicy()
    cls = provider_class(provider)
    info: EndpointInfo = await policy.call(cls(client, base_url=base_url, model=model).describe)
    last: EndpointError | None = None
    for max_tokens in (0, 1) if cls.honours_max_tokens_zero else (1,):
        scorer = cls(client, base_url=base_url, model=info.model, max_tokens=max_tokens)
        try:
            records = await policy.call(partial(scorer.score, [PROBE_PROMPT]))
        except HTTPStatusError as err:
            if err.status in (400, 422) and max_tokens == 0:
                last = err  # max_tokens=0 refused: try 1 and drop the generated token
                continue
            raise CapabilityError(f"scoring request refused: {err}", endpoint=base_url) from err
        except ResponseFormatError as err:
            raise CapabilityError(f"prompt logprobs unusable: {err}", endpoint=base_url) from err
        record = records[0]
        return ProbeResult(
            provider=provider,
            info=info,
            max_tokens=max_tokens,
            n_tokens=len(record.tokens),
            first_logprob_null=record.logprobs[0] is None,
        )
    raise CapabilityError(f"scoring request refused: {last}", endpoint=base_url)


AUTO = "auto"
SELF_HOSTED = ("vllm", "openai-completions", "sglang", "tgi", "llama-cpp-python")
HOSTED = {"api.openai.com": "openai", "api.together.xyz": "together", "api.fireworks.ai": "fireworks"}


def candidates(base_url: str) -> list[str]:
    """Dialects to try, most precise first: a known hosted API by its host, else the self-hosted servers."""
    host = httpx.URL(base_url).host
    return [HOSTED[host]] if host in HOSTED else list(SELF_HOSTED)


@dataclass(frozen=True)
class DialectRow:
    provider: str
    usable: bool
    detail: str


async def detect(
    client: httpx.AsyncClient, *, base_url: str, model: str, exhaustive: bool, policy: RetryPolicy | None = None
) -> tuple[ProbeResult | None, list[DialectRow]]:
    """Try each candidate dialect; the first usable one is chosen. `exhaustive` tries them all (the table)."""
    chosen: ProbeResult | None = None
    rows: list[DialectRow] = []
    policy = policy or RetryPolicy(retry_garbled=False)
    for name in candidates(base_url):
        try:
            result = await probe(client, provider=name, base_url=base_url, model=model, policy=policy)
        except (Unreachable, ModelNotServed):  # nothing answers there, or no such model: one line, no table
            raise
        except TransportError as err:  # nothing answers there: no other dialect will either
            rows.append(DialectRow(name, False, _one_line(err)))
            break
        except EndpointError as err:
            rows.append(DialectRow(name, False, _one_line(err)))
            continue
        rows.append(DialectRow(name, True, f"{result.n_tokens} prompt tokens, complete and aligned"))
        chosen = chosen or result
        if not exhaustive:
            break
    return chosen, rows


def refusal(base_url: str, rows: list[DialectRow]) -> CapabilityError:
    """One error that says why no dialect works, and what a chat-only endpoint means for this method."""
    reasons = "; ".join(f"{r.provider}: {r.detail}" for r in rows)
    not_found = all("HTTP 404" in r.detail or "HTTP 405" in r.detail for r in rows)
    hint = f" {explain_chat_only()}" if not_found else ""
    return CapabilityError(f"no dialect returns usable prompt logprobs ({reasons}).{hint}", endpoint=base_url)


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    endpoint = getattr(err, "endpoint", None)
    if endpoint:
        text = text.replace(f"{endpoint}: ", "")
    return text if len(text) <= 160 else text[:157] + "..."

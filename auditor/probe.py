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

from auditor.errors import CapabilityError, EndpointError, HTTPStatusError, ResponseFormatError
from auditor.retry import RetryPolicy
from providers.base import EndpointInfo, provider_class

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
    for max_tokens in (0, 1):
        adapter = cls(client, base_url=base_url, model=info.model, max_tokens=max_tokens)
        try:
            records = await policy.call(partial(adapter.score, [PROBE_PROMPT]))
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

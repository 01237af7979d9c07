"""Fireworks AI: OpenAI-compatible `/v1/completions` with echo, parsed like the generic adapter.

Fireworks documents `echo` and `logprobs` on completions; whether prompt-token logprobs really come
back is unconfirmed (ENDPOINTS.md), and the probe decides. The dialect is the generic one; the adapter
exists so that the provenance and the cache keys name the service.
"""

from __future__ import annotations

from typing import Any

from providers.openai_completions import OpenAICompletions


class Fireworks(OpenAICompletions):
    name = "fireworks"

    def scoring_params(self) -> dict[str, Any]:
        return {**super().scoring_params(), "dialect": self.name}

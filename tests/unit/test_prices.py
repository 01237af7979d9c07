"""auditor.endpoint.prices: the documented table, lookups, and cost arithmetic."""

from __future__ import annotations

import re

import pytest

from auditor.endpoint import prices
from providers.base import provider_names


def test_known_legacy_openai_models_have_their_documented_prices() -> None:
    assert prices.price_for("openai", "davinci-002") == 2.00
    assert prices.price_for("openai", "babbage-002") == 0.40
    assert prices.price_for(" OpenAI ", "Davinci-002") == 2.00  # spelling at the edge does not matter


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-3.5-turbo-instruct"),  # refuses echo with logprobs: not auditable, no entry
        ("openai", "gpt-4o"),
        ("vllm", "davinci-002"),  # a self-hosted model of that name is not OpenAI's bill
        ("together", "meta-llama/Llama-3-8b-hf"),
        ("fireworks", "accounts/fireworks/models/llama-v3-8b"),
    ],
)
def test_unknown_models_have_no_price(provider: str, model: str) -> None:
    assert prices.price_for(provider, model) is None and prices.price_info(provider, model) is None


def test_every_entry_states_a_source_and_a_date_and_is_documented() -> None:
    doc = prices.__doc__ or ""
    for (provider, model), info in prices.PRICES.items():
        assert provider in provider_names()
        assert info.usd_per_mtok > 0 and "openai.com" in info.source
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", info.as_of)
        assert f"`{model}`: {info.usd_per_mtok:.2f}" in doc


def test_cost_is_tokens_times_price_per_million() -> None:
    assert prices.cost(1_000_000, 2.0) == 2.0
    assert prices.cost(0, 2.0) == 0.0
    assert prices.cost(250_000, 0.40) == pytest.approx(0.1)
    # 14,042 MMLU items x 24 orderings x ~96 tokens on davinci-002
    assert prices.cost(14_042 * 24 * 96, prices.price_for("openai", "davinci-002") or 0) == pytest.approx(64.7, abs=0.1)
    with pytest.raises(ValueError, match="non-negative"):
        prices.cost(-1, 2.0)
    with pytest.raises(ValueError, match="non-negative"):
        prices.cost(1, -2.0)

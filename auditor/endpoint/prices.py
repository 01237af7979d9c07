"""Known prices of hosted models that can be audited, in USD per million tokens.

Only models whose API returns prompt log-probabilities and whose price has a stated source are listed;
anything else needs `--price-per-mtok`. Prices change: each entry says where it was read and when.

- openai `davinci-002`: 2.00. OpenAI's model page (developers.openai.com/api/docs/models/davinci-002,
  "Text tokens": input $2, output $2 per 1M tokens) and the legacy-models rows of its pricing page
  (developers.openai.com/api/docs/pricing: davinci-002 $2.00 input, $2.00 output).
- openai `babbage-002`: 0.40. Model page developers.openai.com/api/docs/models/babbage-002 (input $0.4,
  output $0.4 per 1M tokens) and the same pricing rows (babbage-002 $0.40 input, $0.40 output).

Both read on 2026-11-27 from stored copies of those pages (their crawl date is not shown; the pricing
table with the same figures was read on 2026-11-05 by api-evangelist, "OpenAI API Pricing: What Every
Model Costs Per Million Tokens", 2026-11-06). Input and output tokens cost the same for these two
models, so one price covers a scoring request (its prompt plus the one token generated where the
dialect generates one).

Together and Fireworks price by model and change often; no entry is kept for them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    usd_per_mtok: float  # input and output tokens alike
    source: str
    as_of: str  # ISO date the price was read


_OPENAI_PRICING = "developers.openai.com/api/docs/pricing (legacy models)"
PRICES: dict[tuple[str, str], Price] = {
    ("openai", "davinci-002"): Price(
        2.00, f"developers.openai.com/api/docs/models/davinci-002; {_OPENAI_PRICING}", "2026-11-27"
    ),
    ("openai", "babbage-002"): Price(
        0.40, f"developers.openai.com/api/docs/models/babbage-002; {_OPENAI_PRICING}", "2026-11-27"
    ),
}


def price_info(provider: str, model: str) -> Price | None:
    """The table entry for a model served by a provider (registry name, e.g. "openai"), or None."""
    return PRICES.get((provider.strip().lower(), model.strip().lower()))


def price_for(provider: str, model: str) -> float | None:
    """USD per million tokens for a known hosted model, or None when the price is not known here."""
    info = price_info(provider, model)
    return None if info is None else info.usd_per_mtok


def cost(tokens: int, price: float) -> float:
    """USD for `tokens` at `price` USD per million tokens."""
    if tokens < 0 or price < 0:
        raise ValueError("tokens and price must be non-negative")
    return tokens * price / 1_000_000

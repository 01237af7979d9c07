"""`auditor probe`: which dialects answer with usable prompt log-probabilities."""

from __future__ import annotations

import argparse
from typing import Any

from auditor.cli.options import endpoint_config
from auditor.endpoint.config import EndpointConfig, http_client
from auditor.endpoint.probe import AUTO, DialectRow, ProbeResult, detect, probe, refusal
from auditor.errors import EndpointError, UsageError
from auditor.scoring.cache import ScoreCache, put_probe


async def probe_command(args: argparse.Namespace) -> int:
    """Print which dialects answer with usable prompt logprobs; exit 0 only when one does."""
    ep = endpoint_config(args)
    if ep.replicas:
        raise UsageError(
            "probe checks one endpoint: give one --base-url and probe each replica in turn"
            " (`auditor run` probes and cross-checks every replica before scoring)"
        )
    with ScoreCache(args.cache) as cache:
        async with http_client(ep) as client:
            if ep.provider == AUTO:
                result, table = await detect(client, base_url=ep.base_url, model=ep.model, exhaustive=True)
            else:
                result, table = await detect_one(client, ep)
            for row in table:
                print(f"{row.provider:<20} {'usable' if row.usable else 'no':<7} {row.detail}")
            if result is None:
                raise refusal(ep.base_url, table)
            put_probe(cache, endpoint=ep.base_url, model=ep.model, provider=ep.provider, result=result.to_json())
    info = result.info
    rows = [
        ("endpoint", info.base_url),
        ("model", info.model),
        ("server", f"{info.server or '?'} {info.server_version or ''}".strip()),
        ("max model length", str(info.max_model_len or "?")),
        ("dialect", f"{result.provider} (use --provider {result.provider} to skip detection)"),
        ("prompt logprobs", f"complete and aligned ({result.n_tokens} tokens)"),
        ("max_tokens", f"{result.max_tokens}" + (" (the generated token is dropped)" if result.max_tokens else "")),
        ("verdict", "usable"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


async def detect_one(client: Any, ep: EndpointConfig) -> tuple[ProbeResult | None, list[DialectRow]]:
    try:
        result = await probe(client, provider=ep.provider, base_url=ep.base_url, model=ep.model)
    except EndpointError as err:
        return None, [DialectRow(ep.provider, False, str(err))]
    return result, [DialectRow(ep.provider, True, f"{result.n_tokens} prompt tokens, complete and aligned")]

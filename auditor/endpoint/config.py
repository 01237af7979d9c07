"""The endpoint: its configuration, the HTTP client that carries the key, the cached capability probe,
and what a scoring request costs in tokens (for budgets).

Nothing here scores anything except the probe's one known prompt, and that only when no cached
probe of this endpoint still matches what the server says it is.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from auditor.endpoint.probe import AUTO, ProbeResult, detect, probe, refusal
from auditor.endpoint.secrets import default_key_env, resolve_api_key, split_url_credentials
from auditor.errors import AuditorError, UsageError
from auditor.prompts.orderings import Rendered
from auditor.scoring.budget import byte_upper_bound
from auditor.scoring.cache import ScoreCache, get_probe, key_maker, put_probe
from auditor.scoring.retry import RetryPolicy
from providers.base import EndpointInfo, Provider, provider_class
from providers.http import AuditClient, ExchangeLimits
from providers.local import LOCAL_ENDPOINT


def check_base_url(url: str) -> None:
    """An http(s) URL with a host, or a UsageError saying what a base URL looks like (nothing is sent)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as err:
        raise UsageError(f"--base-url {url!r} is not a URL ({err}); e.g. http://127.0.0.1:8000/v1") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"--base-url {url!r} is not an http(s) URL with a host; e.g. http://127.0.0.1:8000/v1")


@dataclass(frozen=True)
class EndpointConfig:
    base_url: str  # without userinfo: a key written into the URL is moved to `url_auth` on construction
    model: str = ""
    provider: str = "auto"
    api_key_env: str | None = None
    api_key_file: Path | None = None
    timeout: float = 120.0  # seconds for one whole exchange (connect, first byte, body)
    insecure: bool = False
    max_response_mb: float | None = None  # None: sized from each request (providers/http.py)
    url_auth: tuple[str, str] | None = field(default=None, repr=False, compare=False)
    replicas: tuple[str, ...] = ()  # more base URLs serving the same model (auditor/endpoint/replicas.py)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise UsageError(f"--timeout must be a positive number of seconds (got {self.timeout})")
        if self.provider == "local" and self.base_url != LOCAL_ENDPOINT:
            raise UsageError("--provider local scores in this process: give --model, not --base-url")
        if self.provider != "local" and not self.base_url:
            raise UsageError(f"--provider {self.provider} needs --base-url (or use --provider local --model PATH)")
        if self.provider != "local":
            check_base_url(self.base_url)
        mb = self.max_response_mb
        if mb is not None and not (math.isfinite(mb) and mb > 0):
            raise UsageError(f"--max-response-mb must be a positive number (got {mb})")
        base, auth = split_url_credentials(self.base_url)
        if auth is not None:
            object.__setattr__(self, "base_url", base)
            object.__setattr__(self, "url_auth", auth)
        self._check_replicas()

    def _check_replicas(self) -> None:
        if not self.replicas:
            return
        if self.provider == "local":
            raise UsageError("--provider local scores in this process: replicas (several --base-url) are endpoints")
        for url in self.replicas:
            check_base_url(url)
            if split_url_credentials(url)[1] is not None:
                raise UsageError("replicas share one key: give it with --api-key-env/--api-key-file, not in a URL")
        seen = [u.rstrip("/") for u in self.urls]
        twice = sorted({u for u in seen if seen.count(u) > 1})
        if twice:
            raise UsageError(f"--base-url {twice[0]} given twice: each replica once")

    @property
    def urls(self) -> tuple[str, ...]:
        """Every base URL of this endpoint: the first, then its replicas."""
        return (self.base_url, *self.replicas)

    @property
    def exchange(self) -> ExchangeLimits:
        cap = None if self.max_response_mb is None else int(self.max_response_mb * (1 << 20))
        return ExchangeLimits(deadline=self.timeout, max_response_bytes=cap)


def endpoint_secrets(ep: EndpointConfig) -> tuple[str, ...]:
    """Every credential of this endpoint (the key, a URL's password, a URL user long enough to be a key)."""
    key = resolve_api_key(
        ep.api_key_env, ep.api_key_file, dict(os.environ), default_env=default_key_env(ep.provider, ep.base_url)
    )
    user, password = ep.url_auth or ("", "")
    return tuple(s for s in (key, password, user if len(user) >= 8 else "") if s)


def http_client(ep: EndpointConfig) -> AuditClient:
    """The one client for an endpoint: its credential in the Authorization header, TLS as configured, and
    the per-exchange deadline and size cap that providers/http.py enforces."""
    key = resolve_api_key(
        ep.api_key_env, ep.api_key_file, dict(os.environ), default_env=default_key_env(ep.provider, ep.base_url)
    )
    headers = {}
    if key and ep.url_auth:
        raise UsageError("give the key with --api-key-env/--api-key-file or in the URL, not both")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    elif ep.url_auth:
        pair = base64.b64encode(":".join(ep.url_auth).encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    return AuditClient(
        exchange=ep.exchange,
        headers=headers,
        timeout=httpx.Timeout(ep.timeout, connect=min(10.0, ep.timeout)),
        verify=not ep.insecure,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        follow_redirects=False,
    )


async def probe_endpoint(
    client: httpx.AsyncClient, cache: ScoreCache, ep: EndpointConfig, *, refresh: bool
) -> tuple[ProbeResult, bool]:
    """The endpoint's capabilities, from the cache unless `refresh` (returns (result, cached)).

    With `--provider auto` the dialects are tried in turn and the first usable one is kept. The cached
    answer is used only while the server still describes itself the same way (model id, loaded
    weights, version: one GET, no scoring); a restart with other weights is probed anew.
    """
    key = {"endpoint": ep.base_url.rstrip("/"), "model": ep.model, "provider": ep.provider}
    if not refresh:
        known = cached_probe(cache, key)
        if known is not None:
            provider = provider_class(known.provider)(client, base_url=ep.base_url, model=ep.model)
            if await RetryPolicy().call(provider.describe) == known.info:
                return known, True
    if ep.provider == AUTO:
        result, rows = await detect(client, base_url=ep.base_url, model=ep.model, exhaustive=False)
        if result is None:
            raise refusal(ep.base_url, rows)
    else:
        result = await probe(client, provider=ep.provider, base_url=ep.base_url, model=ep.model)
    put_probe(cache, **key, result=result.to_json())
    return result, False


def cached_probe(cache: ScoreCache, key: dict[str, str]) -> ProbeResult | None:
    cached = get_probe(cache, **key)
    if cached is None:
        return None
    try:
        return ProbeResult.from_json(cached)
    except (KeyError, TypeError, ValueError):
        return None


def server_bounds(provider: Provider) -> Callable[[Sequence[str]], Any]:
    """Reservations from the server's own token counts where it can tokenize, else UTF-8 bytes (also
    from then on, if its tokenize endpoint fails once)."""
    broken: list[bool] = []

    async def bounds(prompts: Sequence[str]) -> list[int]:
        counted = None
        if not broken:
            try:
                counted = await provider.count_tokens(prompts)
            except AuditorError:
                broken.append(True)
        return list(counted) if counted is not None else [byte_upper_bound(p) for p in prompts]

    return bounds


def prompt_keys(
    provider: Provider, info: EndpointInfo, rendered: Sequence[Sequence[Rendered]], *, insecure: bool = False
) -> tuple[dict[str, Any], list[list[str]]]:
    """The scoring parameters that identify an answer, and every rendered prompt's cache key."""
    params, key = prompt_key(provider, info, insecure=insecure)
    return params, [[key(r.text) for r in rows] for rows in rendered]


def prompt_key(
    provider: Provider, info: EndpointInfo, *, insecure: bool = False
) -> tuple[dict[str, Any], Callable[[str], str]]:
    """The scoring parameters that identify an answer, and the function giving a prompt's cache key.

    What the server says it loaded (vLLM: the weights' path) joins the parameters, so a different
    checkpoint served under the same name and port never reuses another's scores; so does the TLS mode:
    scores fetched without certificate checks (`insecure`) are never reused by a verified run."""
    params = {**provider.scoring_params(), **({"model_root": info.extra["root"]} if info.extra.get("root") else {})}
    if insecure:
        params["tls_verified"] = False
    endpoint, model = provider.identity(info)
    return params, key_maker(endpoint=endpoint, model=model, params=params)  # the fixed part built once

"""API keys: read from an environment variable or a file (never from a flag value), and redacted.

A key is only ever put in the Authorization header of requests to the configured base URL. Every
error text that can reach the screen, the cache or a report passes through `redact` first, because
servers do echo credentials back in error messages.

Without `--api-key-env` / `--api-key-file`, a hosted provider's usual variable is read
(OPENAI_API_KEY, TOGETHER_API_KEY, FIREWORKS_API_KEY), but only when the base URL is that provider's
own host: an OpenAI key in your environment is never sent to a local server or a proxy unless you
name it with `--api-key-env OPENAI_API_KEY`.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from auditor.errors import UsageError

MASK = "[REDACTED]"

DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "together": "TOGETHER_API_KEY", "fireworks": "FIREWORKS_API_KEY"}
PROVIDER_HOSTS = {
    "openai": ("api.openai.com",),
    "together": ("api.together.xyz", "api.together.ai"),
    "fireworks": ("api.fireworks.ai",),
}


def default_key_env(provider: str, base_url: str) -> str | None:
    """The environment variable a hosted provider's key is read from by default, or None.

    Only for the provider's own host; with `--provider auto` the host decides the provider."""
    host = httpx.URL(base_url).host
    for name, hosts in PROVIDER_HOSTS.items():
        if host in hosts and provider in ("auto", name):
            return DEFAULT_KEY_ENV[name]
    return None


def resolve_api_key(
    env_name: str | None, file: Path | None, environ: dict[str, str], *, default_env: str | None = None
) -> str | None:
    if env_name and file:
        raise UsageError("give --api-key-env or --api-key-file, not both")
    if env_name:
        key = environ.get(env_name, "").strip()
        if not key:
            raise UsageError(f"environment variable {env_name} is not set (named by --api-key-env)")
        return key
    if file:
        try:
            key = file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise UsageError(f"cannot read --api-key-file {file}: {err.strerror}") from None
        if not key:
            raise UsageError(f"--api-key-file {file} is empty")
        return key
    if default_env:
        return environ.get(default_env, "").strip() or None
    return None


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text

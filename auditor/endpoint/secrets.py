"""API keys: read from an environment variable or a file (never from a flag value), and redacted.

A key is only ever put in the Authorization header of requests to the configured base URL. Servers do
echo credentials back (in model lists, version strings, error bodies): providers/http.py scrubs the
credential a request carried from everything its answer says, and every error text that can reach the
screen, the cache or a report passes through `redact` too. A key written into the URL
(`http://user:KEY@host/v1`) is taken out of it (`split_url_credentials`) and sent as Basic auth, so the
URL that is cached, reported and printed never holds it. A key given by mistake as the value of
`--api-key-env` or `--api-key-file` is never echoed in the error.

Without `--api-key-env` / `--api-key-file`, a hosted provider's usual variable is read
(OPENAI_API_KEY, TOGETHER_API_KEY, FIREWORKS_API_KEY), but only when the base URL is that provider's
own host: an OpenAI key in your environment is never sent to a local server or a proxy unless you
name it with `--api-key-env OPENAI_API_KEY`.
"""

from __future__ import annotations

import re
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


def split_url_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without its userinfo, and the userinfo as (user, password), or None."""
    parsed = httpx.URL(url)
    if parsed.query or parsed.fragment:
        raise UsageError("--base-url must not carry a query string or fragment (give a key with --api-key-env or"
                         " --api-key-file; the URL is not shown in case it holds one)")  # fmt: skip
    if not parsed.userinfo:
        return url, None
    return str(parsed.copy_with(username=None, password=None)), (parsed.username, parsed.password)


NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")  # what an environment variable's name looks like (not a key)


def resolve_api_key(
    env_name: str | None, file: Path | None, environ: dict[str, str], *, default_env: str | None = None
) -> str | None:
    if env_name and file:
        raise UsageError("give --api-key-env or --api-key-file, not both")
    if env_name:
        key = environ.get(env_name, "").strip()
        if not key and NAME.fullmatch(env_name):
            raise UsageError(f"environment variable {env_name} is not set (named by --api-key-env)")
        if not key:
            raise UsageError("--api-key-env takes the NAME of an environment variable that holds the key; none of"
                             " the name given is set (not shown in case it is the key itself)")  # fmt: skip
        return key
    if file:
        if not file.exists():
            raise UsageError("--api-key-file: no such file (the value is not shown in case it is the key itself:"
                             " write the key to a file and give its path)")  # fmt: skip
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

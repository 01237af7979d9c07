"""API keys: read from an environment variable or a file (never from a flag value), and redacted.

A key is only ever put in the Authorization header of requests to the configured base URL. Every
error text that can reach the screen, the cache or a report passes through `redact` first, because
servers do echo credentials back in error messages.
"""

from __future__ import annotations

from pathlib import Path

from auditor.errors import UsageError

MASK = "[REDACTED]"


def resolve_api_key(env_name: str | None, file: Path | None, environ: dict[str, str]) -> str | None:
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
    return None


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text

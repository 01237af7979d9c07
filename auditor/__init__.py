"""auditor: tell whether a language model was trained on a multiple-choice benchmark, from an endpoint.

    import asyncio
    from auditor import audit, compare

    report = asyncio.run(audit("http://127.0.0.1:8000/v1", "mmlu", model="M", items=50, out="runs/m1"))

See auditor/api.py and the README's "Python API".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from auditor.api import audit, compare

__all__ = ["__version__", "audit", "compare"]


def __getattr__(name: str) -> Any:
    """`audit` and `compare` load the engine on first use, so that `import auditor.input.items` (the canary
    build script runs it in the server venv, which has vLLM but not auditor's client dependencies) and
    `auditor --help` do not import httpx, the providers and the report writers."""
    if name in ("audit", "compare"):
        from auditor import api

        return getattr(api, name)
    raise AttributeError(f"module 'auditor' has no attribute {name!r}")

"""auditor: tell whether a language model was trained on a multiple-choice benchmark, from an endpoint.

    import asyncio
    from auditor import audit, compare

    report = asyncio.run(audit("http://127.0.0.1:8000/v1", "mmlu", model="M", items=50, out="runs/m1"))

See auditor/api.py and the README's "Python API".
"""

__version__ = "0.1.0"

from auditor.api import audit, compare  # after __version__, which the engine imports

__all__ = ["__version__", "audit", "compare"]

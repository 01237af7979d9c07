"""JSON on the hot paths (server answers, cached records, a run's report into the results database): orjson,
with the stdlib as fallback.

orjson parses a vLLM answer 2-3x faster than `json.loads`. It refuses what the stdlib accepts beyond
strict JSON (NaN and Infinity literals, lone surrogate escapes); those inputs go to `json.loads`, so
the result is the same value either way, and a body neither can parse raises `ValueError`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dump_bytes(value: Any) -> bytes:
    """Compact JSON of `value` as UTF-8 bytes; `value` must hold no NaN or infinity (a report's data: `to_json`
    made them null). orjson writes it in one buffer, where `json.dumps` first builds a list of every fragment:
    for a 14k-item report (23 MB of text) that list cost ~90 MB at the end of the run. Text orjson refuses (a
    lone surrogate in a dataset's text, an int past 64 bits) goes to the stdlib with ASCII escapes, so the
    surrogate is written `\\udXXX`: valid JSON in valid UTF-8."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, allow_nan=False).encode()

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from auditor.scoring.cache import KEY_VERSION, ScoreCache, cache_key, key_maker
from providers.base import LogprobRecord

REC = LogprobRecord(tokens=("<s>", "Hi", "."), logprobs=(None, -1.25, -0.5), offsets=(0, 0, 2), prompt_tokens=3)
PARAMS = {"dialect": "openai-completions", "echo": True, "logprobs": 0, "temperature": 0}


def test_key_is_canonical_and_versioned() -> None:
    a = cache_key(endpoint="http://h/v1", model="m", prompt="p", params={"a": 1, "b": 2})
    b = cache_key(endpoint="http://h/v1", model="m", prompt="p", params={"b": 2, "a": 1})
    assert a == b and a.startswith(f"{KEY_VERSION}:")


def test_key_maker_gives_the_same_keys() -> None:
    key = key_maker(endpoint="http://h/v1", model="m", params=PARAMS)
    for prompt in ["p", "", 'quote " and \\ back', "caf\u00e9 \u4e2d\n\t\u0001", "}"]:
        assert key(prompt) == cache_key(endpoint="http://h/v1", model="m", prompt=prompt, params=PARAMS)


def test_key_maker_matches_on_every_code_point() -> None:
    """key_maker writes the prompt's JSON its own way: every character outside the surrogates, escaped or not,
    must give the key `cache_key` gives (a mismatch would silently miss every cached score)."""
    key = key_maker(endpoint="http://h/v1", model="m", params=PARAMS)
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(points), 4096):
        prompt = "".join(map(chr, points[start : start + 4096]))
        assert key(prompt) == cache_key(endpoint="http://h/v1", model="m", prompt=prompt, params=PARAMS)
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate fails alike in both
        cache_key(endpoint="http://h/v1", model="m", prompt="a\ud800", params=PARAMS)
    with pytest.raises(UnicodeEncodeError):
        key("a\ud800")


def test_key_changes_with_each_allowed_field() -> None:
    base = {"endpoint": "http://h/v1", "model": "m", "prompt": "p", "params": PARAMS}
    k0 = cache_key(**base)  # type: ignore[arg-type]
    for field, value in [
        ("endpoint", "http://other/v1"),
        ("model", "m2"),
        ("prompt", "p "),
        ("params", {**PARAMS, "logprobs": 1}),
    ]:
        assert cache_key(**{**base, field: value}) != k0  # type: ignore[arg-type]


def test_roundtrip_and_exact_schema(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with ScoreCache(path) as cache:
        cache.put("k", endpoint="e", model="m", record=REC)
        assert cache.get("k") == REC
        assert cache.get("missing") is None
        cols = {r[1]: r[2] for r in cache.db.execute("pragma table_info(scores)").fetchall()}
        assert cols == {
            "key": "TEXT",
            "endpoint": "TEXT",
            "model": "TEXT",
            "record_json": "TEXT",
            "logprobs": "BLOB",
            "digest": "TEXT",
            "created_at": "TEXT",
        }
        assert cache.db.execute("pragma journal_mode").fetchone()[0] == "wal"
    with ScoreCache(path) as again:  # reopening applies no migration twice and keeps rows
        assert again.get("k") == REC
        assert again.stats.hits == 1


def test_damaged_row_is_discarded_not_used(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with ScoreCache(path) as cache:
        cache.put("k", endpoint="e", model="m", record=REC)
    conn = sqlite3.connect(path)
    conn.execute("update scores set record_json = replace(record_json, 'Hi', 'Ho')")
    conn.commit()
    conn.close()
    with ScoreCache(path) as cache:
        assert cache.get("k") is None
        assert cache.stats.discarded == 1
        assert cache.db.execute("select count(*) from scores").fetchone()[0] == 0


def test_insert_or_ignore_keeps_first(tmp_path: Path) -> None:
    other = LogprobRecord(tokens=("<s>", "Hi", "."), logprobs=(None, -9.0, -9.0), offsets=(0, 0, 2))
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        cache.put("k", endpoint="e", model="m", record=REC)
        cache.put("k", endpoint="e", model="m", record=other)
        assert cache.get("k") == REC


def test_a_row_that_is_not_a_score_is_discarded_and_never_written(tmp_path: Path) -> None:
    """What versions before the logprob check cached: +Infinity, or above 0, with a digest that matches."""
    import struct
    from hashlib import sha256

    import pytest

    with ScoreCache(tmp_path / "c.sqlite") as cache:
        poisons = (("inf", 1, float("inf")), ("pos", 1, 2.5), ("nan", 1, float("nan")), ("first-pos", 0, 2.5),
                   ("first-inf", 0, float("-inf")))  # fmt: skip
        for key, at, value in poisons:
            cache.put(key, endpoint="e", model="m", record=REC)
            meta, values = cache.db.execute("select record_json, logprobs from scores where key=?", [key]).fetchone()
            bad = values[: 8 * at] + struct.pack("<d", value) + values[8 * at + 8 :]
            digest = sha256(meta.encode() + b"\x00" + bad).hexdigest()
            cache.db.execute("update scores set logprobs=?, digest=? where key=?", [bad, digest, key])
            assert cache.get(key) is None  # discarded, to be fetched again
        assert cache.stats.discarded == 5 and cache.db.execute("select count(*) from scores").fetchone()[0] == 0
        poisoned = LogprobRecord(tokens=("<s>", "Hi"), logprobs=(None, float("-inf")), offsets=(0, 0))
        with pytest.raises(ValueError, match="not a score"):
            cache.put("k", endpoint="e", model="m", record=poisoned)

"""The fault server really does what its spec says, checked on the wire with plain httpx (no auditor client)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditor.errors import ResponseFormatError
from providers.openai_completions import parse_completions
from tests.support.faultserver import (
    FaultServer,
    FaultServerProcess,
    Rule,
    Stats,
    parse_faults,
    prompt_key,
    read_state,
    schedule,
)

PROMPTS = ["Question: 2+2?\nA. 4\nB. 5\nAnswer:", "Question: capital of France?\nA. Paris\nB. Rome\nAnswer:"]


def body(prompts: list[str] | str = PROMPTS, model: str = "fake-model") -> dict[str, Any]:
    return {"model": model, "prompt": prompts, "echo": True, "logprobs": 0, "max_tokens": 0, "temperature": 0}


def post(client: httpx.Client, base_url: str, prompts: list[str] | str = PROMPTS) -> httpx.Response:
    return client.post(f"{base_url}/completions", json=body(prompts))


def test_clean_request_parses_and_is_counted() -> None:
    with FaultServer() as srv, httpx.Client(timeout=5) as c:
        models = c.get(f"{srv.base_url}/models").json()
        assert models["data"][0]["id"] == "fake-model"
        assert c.get(f"{srv.url}/version").json()["version"]
        r = post(c, srv.base_url)
        assert r.status_code == 200
        records = parse_completions(r.json(), PROMPTS)
        assert [len(rec.tokens) for rec in records] == [len(p.split()) + 1 for p in PROMPTS]
        single = post(c, srv.base_url, PROMPTS[0])  # a string prompt, same connection (keep-alive)
        assert parse_completions(single.json(), [PROMPTS[0]])[0] == records[0]
        assert c.post(f"{srv.base_url}/completions", json=body(model="other")).status_code == 404
        stats = Stats.from_json(c.get(f"{srv.url}/_stats").json())
    assert stats == srv.stats()
    assert (stats.requests, stats.scored, stats.faults) == (3, 3, {})
    assert stats.scored_count(PROMPTS[0]) == 2 and stats.scored_count(PROMPTS[1]) == 1
    assert stats.request_count(PROMPTS[1]) == 2 and stats.requests_by_prompt[prompt_key(PROMPTS[1])] == 2


def test_rule_triggers_and_seeded_schedule() -> None:
    assert schedule("429,every=3; 500,first=2; 503,at=4|7; 502,after=8", 0, 10) == [
        "500", "500", "429", "503", None, "429", "503", None, "429", "502",
    ]  # fmt: skip
    a, b = schedule("reset,p=0.5", 1, 200), schedule("reset,p=0.5", 1, 200)
    assert a == b and 60 < a.count("reset") < 140 and a != schedule("reset,p=0.5", 2, 200)
    mixed = schedule("mix,kinds=429|truncate,every=2", 3, 40)
    assert set(mixed[1::2]) == {"429", "truncate"} and set(mixed[::2]) == {None}
    assert schedule([Rule("slow", first=1, seconds=0.1)], 0, 2) == ["slow", None]
    assert parse_faults("429, retry_after=2 ,every=5")[0] == Rule("429", retry_after="2", every=5)
    for bad in ("teapot", "429,every", "429,bogus=1", "mix,kinds=die"):
        with pytest.raises(ValueError):
            parse_faults(bad)


@pytest.mark.parametrize(("spec", "status", "retry_after"), [
    ("429,retry_after=3", 429, "3"), ("429", 429, None), ("500", 500, None), ("502", 502, None), ("503", 503, None),
])  # fmt: skip
def test_status_faults(spec: str, status: int, retry_after: str | None) -> None:
    with FaultServer(f"{spec},every=2") as srv, httpx.Client(timeout=5) as c:
        assert post(c, srv.base_url).status_code == 200
        r = post(c, srv.base_url)
        assert r.status_code == status and r.headers.get("retry-after") == retry_after
        assert r.json()["object"] == "error"
        assert post(c, srv.base_url).status_code == 200  # same connection still usable
    s = srv.stats()
    assert (s.requests, s.scored, s.faults) == (3, 4, {str(status): 1})


def test_reset_mid_body_and_drop() -> None:
    with FaultServer("reset,at=1; drop,at=2") as srv:
        with httpx.Client(timeout=5) as c, c.stream("POST", f"{srv.base_url}/completions", json=body()) as r:
            assert r.status_code == 200  # headers arrived
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                r.read()
        with httpx.Client(timeout=5) as c, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            post(c, srv.base_url)
        with httpx.Client(timeout=5) as c:
            assert post(c, srv.base_url).status_code == 200
    s = srv.stats()
    assert (s.requests, s.scored, s.faults) == (3, 2, {"reset": 1, "drop": 1})


@pytest.mark.parametrize("kind", ["truncate", "invalid"])
def test_broken_json_with_200(kind: str) -> None:
    with FaultServer(f"{kind},first=1") as srv, httpx.Client(timeout=5) as c:
        r = post(c, srv.base_url)
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content)
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.content)
        assert post(c, srv.base_url).status_code == 200  # keep-alive survives a broken body
    assert srv.stats().faults == {kind: 1} and srv.stats().scored == 2


def test_short_and_null_logprobs_are_rejected_by_the_parser() -> None:
    with FaultServer("short,at=1; null,at=2,pos=3") as srv, httpx.Client(timeout=5) as c:
        short = post(c, srv.base_url).json()
        lp = short["choices"][0]["logprobs"]
        assert len(lp["token_logprobs"]) == len(lp["tokens"]) - 1
        with pytest.raises(ResponseFormatError, match="different lengths"):
            parse_completions(short, PROMPTS)
        null = post(c, srv.base_url).json()
        assert [ch["logprobs"]["token_logprobs"][3] for ch in null["choices"]] == [None, None]
        with pytest.raises(ResponseFormatError, match="null logprob at token 3"):
            parse_completions(null, PROMPTS)
    assert srv.stats().scored == 0 and srv.stats().faults == {"short": 1, "null": 1}


def test_slow_exceeds_client_timeout_and_is_not_counted_as_scored() -> None:
    with FaultServer("slow,at=1,seconds=0.7; slow,at=2,seconds=0.2") as srv:
        with httpx.Client(timeout=0.5) as c, pytest.raises(httpx.ReadTimeout):
            post(c, srv.base_url)
        with httpx.Client(timeout=0.5) as c:  # waits out the first one's sleep, then a slow-but-in-time answer
            r = post(c, srv.base_url)
            assert r.status_code == 200 and parse_completions(r.json(), PROMPTS)
        s = srv.stats()
    assert (s.requests, s.scored, s.faults) == (2, 2, {"slow": 2})


def test_in_process_die_stops_the_server() -> None:
    with FaultServer("die,at=2") as srv, httpx.Client(timeout=5) as c:
        assert post(c, srv.base_url).status_code == 200
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            post(c, srv.base_url)
        srv._thread.join(5)
        assert srv.died and not srv._thread.is_alive()
        with pytest.raises(httpx.ConnectError):
            c.get(f"{srv.base_url}/models")


def test_subprocess_dies_and_restarts_on_the_same_port_keeping_counts(tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    with FaultServerProcess(state, faults="die,at=3; 429,at=2,retry_after=1") as srv, httpx.Client(timeout=5) as c:
        assert post(c, srv.base_url).status_code == 200
        assert post(c, srv.base_url).headers["retry-after"] == "1"
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            post(c, srv.base_url, PROMPTS[0])
        assert srv.wait() == 3
        with pytest.raises(httpx.ConnectError):
            post(c, srv.base_url)
        port = srv.port
        srv.start()  # same spec, same port: numbering goes on from the state file, so request 4 is clean
        assert srv.port == port
        assert post(c, srv.base_url, PROMPTS[0]).status_code == 200
        live = Stats.from_json(c.get(f"http://127.0.0.1:{port}/_stats").json())
    s = read_state(state)
    assert s == live == srv.stats()
    assert (s.starts, s.requests, s.scored, s.faults) == (2, 4, 3, {"429": 1, "die": 1})
    assert s.scored_count(PROMPTS[0]) == 2 and s.request_count(PROMPTS[0]) == 4 and s.request_count(PROMPTS[1]) == 2


async def test_accounting_matches_what_concurrent_clients_received() -> None:
    prompts = [f"Question {i}: " + " ".join(f"w{j}" for j in range(60)) for i in range(64)]
    batches = [prompts[k : k + 8] for k in range(0, 64, 8)] * 3
    got: Counter[str] = Counter()
    failed = 0
    with FaultServer("mix,p=0.4,kinds=429|503|reset|drop|truncate|invalid|short|null", seed=11) as srv:
        async with httpx.AsyncClient(timeout=5, limits=httpx.Limits(max_connections=6)) as c:

            async def one(batch: list[str]) -> None:
                nonlocal failed
                try:
                    r = await c.post(f"{srv.base_url}/completions", json=body(batch))
                    r.raise_for_status()
                    parse_completions(r.json(), batch)
                    got.update(prompt_key(p) for p in batch)
                except (httpx.HTTPError, json.JSONDecodeError, ResponseFormatError):
                    failed += 1

            await asyncio.gather(*(one(b) for b in batches))
        s = srv.stats()
    assert s.requests == len(batches) and sum(s.faults.values()) == failed > 0
    assert s.scored_by_prompt == got and s.scored == sum(got.values()) == 8 * (len(batches) - failed)

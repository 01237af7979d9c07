"""providers/http.py against real hostile servers on 127.0.0.1: deadlines, size caps, redirects, scrubbing."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import pytest

from auditor.errors import HTTPStatusError, ResponseFormatError, ResponseTooLarge, TransportError
from providers.base import LogprobRecord
from providers.http import AuditClient, ExchangeLimits, request_json, sent_credentials
from providers.openai_completions import OpenAICompletions, parse_completions
from tests.support.hostile import MB, HostileServer

BODY = {"model": "fake-model", "prompt": ["Q: which?\nA:x\nB:y\n"], "echo": True, "logprobs": 0, "max_tokens": 0}


def client(deadline: float = 5.0, cap: int | None = None, **kw: object) -> AuditClient:
    return AuditClient(exchange=ExchangeLimits(deadline, cap), timeout=httpx.Timeout(deadline), **kw)  # type: ignore[arg-type]


async def score(srv: HostileServer, c: httpx.AsyncClient) -> object:
    return await request_json(c, "POST", f"{srv.base_url}/completions", endpoint=srv.base_url, json=BODY)


@pytest.mark.parametrize("mode", ["trickle", "hang"])
async def test_deadline_covers_the_whole_exchange(mode: str) -> None:
    with HostileServer(mode, interval=0.3) as srv:
        async with client(deadline=1.5) as c:
            start = time.monotonic()
            with pytest.raises(TransportError, match=r"no complete answer within 1.5 s"):
                await score(srv, c)
            assert time.monotonic() - start < 2.5


async def test_plain_client_gets_its_read_timeout_as_deadline() -> None:
    with HostileServer("trickle", interval=0.3) as srv:
        async with httpx.AsyncClient(timeout=1.0) as c:
            start = time.monotonic()
            with pytest.raises(TransportError):
                await score(srv, c)
            assert time.monotonic() - start < 2.0


@pytest.mark.parametrize(("mode", "size", "match"), [
    ("huge", 20 * MB, "refused"),  # Content-Length over the cap: nothing read
    ("endless", None, "passed the cap"),
    ("gzip_bomb", 64 * MB, "inflates past the cap"),
])  # fmt: skip
async def test_size_cap_on_the_wire_and_inflated(mode: str, size: int | None, match: str) -> None:
    with HostileServer(mode, size=size) as srv:
        async with client(cap=2 * MB) as c:
            with pytest.raises(ResponseTooLarge, match=match):
                await score(srv, c)


async def test_default_cap_grows_with_the_request() -> None:
    limits = ExchangeLimits()
    assert limits.cap(0) == 8 * MB and limits.cap(10_000) == MB + 2_560_000  # a GET, a POST of 10 kB
    assert ExchangeLimits(max_response_bytes=MB).cap(10**9) == MB


async def test_gzip_within_the_cap_is_inflated() -> None:
    with HostileServer("gzip_bomb", size=MB) as srv:  # 1 MB of whitespace then a valid answer
        async with client(cap=4 * MB) as c:
            data = await score(srv, c)
    assert parse_completions(data, BODY["prompt"])[0].tokens[0] == "<s>"  # type: ignore[index]


async def test_redirect_is_an_error_whatever_its_body() -> None:
    with HostileServer("redirect", scope="all") as srv:
        async with client() as c:
            with pytest.raises(HTTPStatusError, match=r"redirect to .* not followed") as info:
                await score(srv, c)
    assert info.value.status == 307


async def test_key_echoed_by_the_server_is_scrubbed_everywhere() -> None:
    key = "sk-unit-0123456789abcdef"
    with HostileServer("echo_key") as srv:
        async with client(headers={"Authorization": f"Bearer {key}"}) as c:
            info = await OpenAICompletions(c, base_url=srv.base_url, model="").describe()
            with pytest.raises(HTTPStatusError) as refused:
                await request_json(c, "POST", f"{srv.base_url}/completions", endpoint=srv.base_url,
                                   json={**BODY, "prompt": ["please refuse"]})  # fmt: skip
    assert key not in repr(info) and "[REDACTED]" in str(info.server) and "[REDACTED]" in str(info.server_version)
    assert key not in str(refused.value) and key not in refused.value.body


async def test_escaped_spellings_of_the_key_are_scrubbed_after_parsing() -> None:
    key = "sk-unit/0123456789abcdef"
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in key)
    slashed = key.replace("/", "\\/")

    def handler(request: httpx.Request) -> httpx.Response:
        text = f'{{"data": [{{"id": "m", "owned_by": "{escaped}", "root": "{slashed}"}}]}}'
        return httpx.Response(200, content=text.encode(), headers={"content-type": "application/json"})

    async with AuditClient(exchange=ExchangeLimits(), transport=httpx.MockTransport(handler),
                           headers={"Authorization": f"Bearer {key}"}) as c:  # fmt: skip
        data = await request_json(c, "GET", "http://x.test/v1/models", endpoint="http://x.test/v1")
    assert key not in json.dumps(data) and data["data"][0]["owned_by"] == "[REDACTED]"


def test_sent_credentials_bearer_and_basic() -> None:
    bearer = httpx.Request("GET", "http://x", headers={"Authorization": "Bearer sk-0123456789"})
    assert sent_credentials(bearer) == ("Bearer sk-0123456789", "sk-0123456789")
    pair = base64.b64encode(b"u:pw-0123456789").decode()
    basic = httpx.Request("GET", "http://x", headers={"Authorization": f"Basic {pair}"})
    assert "pw-0123456789" in sent_credentials(basic) and "u:pw-0123456789" in sent_credentials(basic)
    assert sent_credentials(httpx.Request("GET", "http://x", headers={"Authorization": "Bearer short"})) == (
        "Bearer short",
    )


@pytest.mark.parametrize(("mode", "match"), [("inf", "not a finite number"), ("positive", "above 0")])
async def test_impossible_logprobs_are_refused(mode: str, match: str) -> None:
    with HostileServer(mode) as srv:
        async with client() as c:
            data = await score(srv, c)
    with pytest.raises(ResponseFormatError, match=match):
        parse_completions(data, BODY["prompt"])


def test_rounding_above_zero_is_accepted_and_records_know_their_problems() -> None:
    ok = LogprobRecord(tokens=("a", "b"), logprobs=(None, 5e-4), offsets=(0, 1))
    assert ok.problem() is None
    assert "above 0" in str(LogprobRecord(tokens=("a", "b"), logprobs=(None, 0.5), offsets=(0, 1)).problem())
    assert "finite" in str(LogprobRecord(tokens=("a", "b"), logprobs=(None, float("-inf")), offsets=(0, 1)).problem())
    assert "null" in str(LogprobRecord(tokens=("a", "b"), logprobs=(-1.0, None), offsets=(0, 1)).problem())
    assert "offsets" in str(LogprobRecord(tokens=("a", "b"), logprobs=(None, -1.0), offsets=(0,)).problem())


async def test_responses_in_flight_share_one_ceiling() -> None:
    """Each answer stops at ~2.5 MB and hangs (under its own 3 MB cap), so two in flight pass the shared 4 MB
    ceiling however the two streams are scheduled (an endless stream could reach its own cap first)."""
    with HostileServer("endless", size=5 * MB // 2) as srv:
        limits = ExchangeLimits(deadline=5, max_response_bytes=3 * MB, max_in_flight_bytes=4 * MB)
        async with AuditClient(exchange=limits, timeout=10) as c:
            results = await asyncio.gather(score(srv, c), score(srv, c), return_exceptions=True)
            assert c.held.now == 0  # given back whatever happened
    assert any("together passed" in str(r) for r in results), results

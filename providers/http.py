"""One HTTP exchange with a server we do not control: bounded in time and size, credentials scrubbed.

    request_json(client, method, url, endpoint=..., json=...) -> the parsed 2xx JSON answer, or an error

- Deadline: connect, first byte and the whole body together must finish within the client's `deadline`
  (one asyncio timeout around the exchange). httpx's own timeouts are per operation, so a server that
  trickles a byte every few seconds never trips them.
- Size: the body may not exceed a cap, on the wire or once decompressed: `max_response_bytes` when given,
  else 1 MiB + 256 bytes per byte of the request (recorded answers stay under ~80 bytes per prompt byte;
  8 MiB for a GET such as a hosted API's model list). Content-Length is checked before reading; the body
  is then read in chunks, gzip/deflate inflated in steps of at most 1 MiB; other encodings are refused
  (we only advertise gzip and deflate). Nothing is buffered by httpx. All responses in flight on one
  `AuditClient` together may hold at most `max_in_flight_bytes` (192 MiB): with many requests in flight
  each within its own cap, a hostile server still cannot make the client hold more than that.
- Secrets: the credential this request carried (the Authorization value, its bearer token, a Basic
  password) is replaced by [REDACTED] in the body before it is parsed, and again in every string parsed
  from it when the body used JSON escapes that could spell it differently. Servers echo keys in model
  lists, version strings and error bodies; no server string leaves this module unscrubbed.
- Status: only 2xx is an answer. Redirects are not followed and a 3xx is an error whatever its body.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json as jsonlib
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from auditor.errors import HTTPStatusError, ResponseFormatError, ResponseTooLarge, TransportError, Unreachable
from auditor.jsonio import loads

MASK = "[REDACTED]"
MIN_SECRET = 8  # shorter credentials are not scrubbed from bodies (they would mangle ordinary JSON)
MIB = 1 << 20
BASE_CAP = MIB
GET_CAP = 8 * MIB
PER_REQUEST_BYTE = 256
IN_FLIGHT_CAP = 192 * MIB
STEP = MIB  # inflate at most this much at a time
DEFAULT_DEADLINE = 120.0
ENCODINGS = {"": None, "identity": None, "gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16,
             "deflate": zlib.MAX_WBITS | 32}  # fmt: skip


@dataclass(frozen=True)
class ExchangeLimits:
    deadline: float = DEFAULT_DEADLINE  # seconds for one whole exchange
    max_response_bytes: int | None = None  # None: sized from the request
    max_in_flight_bytes: int = IN_FLIGHT_CAP  # all responses being read on one client, together

    def cap(self, request_bytes: int) -> int:
        if self.max_response_bytes:
            return self.max_response_bytes
        return BASE_CAP + PER_REQUEST_BYTE * request_bytes if request_bytes else GET_CAP


class AuditClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that carries the limits `request_json` enforces on each exchange."""

    def __init__(self, *, exchange: ExchangeLimits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exchange = exchange
        self.held = _Held(exchange.max_in_flight_bytes)


@dataclass
class _Held:
    """Bytes held by the responses being read on one client (a shared ceiling over their caps)."""

    limit: int
    now: int = 0


def limits_of(client: httpx.AsyncClient) -> ExchangeLimits:
    """The client's limits; a plain client gets a deadline equal to its read timeout and the default cap."""
    if isinstance(client, AuditClient):
        return client.exchange
    read = client.timeout.read
    return ExchangeLimits(deadline=read if read else DEFAULT_DEADLINE)


async def request_json(client: httpx.AsyncClient, method: str, url: str, *, endpoint: str, json: Any = None) -> Any:
    """One bounded exchange; library errors mapped onto the auditor tree (see the module docstring)."""
    limits = limits_of(client)
    content = None if json is None else orjson.dumps(json)  # compact UTF-8, like json.dumps(separators=(",", ":"))
    headers = {"accept-encoding": "gzip, deflate"}
    if content is not None:
        headers["content-type"] = "application/json"
    request = client.build_request(method, url, content=content, headers=headers)
    cap = limits.cap(len(content or b""))
    try:
        async with asyncio.timeout(limits.deadline):
            resp = await client.send(request, stream=True)
            try:
                held = client.held if isinstance(client, AuditClient) else _Held(limits.max_in_flight_bytes)
                body = await _read_capped(resp, cap, endpoint, held)
            finally:
                await resp.aclose()
    except TimeoutError as err:
        message = f"no complete answer within {limits.deadline:g} s (--timeout)"
        raise TransportError(message, endpoint=endpoint, timeout=True) from err
    except httpx.TimeoutException as err:
        raise TransportError(f"timed out ({type(err).__name__})", endpoint=endpoint, timeout=True) from err
    except httpx.ConnectError as err:  # refused, unknown host, unroutable: nothing answers at this URL
        why = f"cannot connect ({type(err).__name__}: {err}): is the server running, and is --base-url right?"
        raise Unreachable(why, endpoint=endpoint) from err
    except httpx.TransportError as err:
        raise TransportError(f"{type(err).__name__}: {err}", endpoint=endpoint) from err
    secrets = sent_credentials(resp.request)
    body = scrub_bytes(body, secrets)
    if not 200 <= resp.status_code < 300:
        raise _status_error(resp, body, secrets, endpoint)
    try:
        data = loads(body)  # orjson, stdlib fallback: auditor/jsonio.py
    except ValueError as err:
        raise ResponseFormatError(f"invalid JSON in response ({len(body)} bytes)", endpoint=endpoint) from err
    return scrub_json(data, secrets) if secrets and b"\\" in body else data


async def _read_capped(resp: httpx.Response, cap: int, endpoint: str, held: _Held) -> bytes:
    length = resp.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise ResponseTooLarge(f"response of {length} bytes refused (cap {cap}; --max-response-mb)", endpoint=endpoint)
    if resp.is_stream_consumed:  # built in memory (a test transport): already read and decoded
        if len(resp.content) > cap:
            raise ResponseTooLarge(f"response passed the cap of {cap} bytes (--max-response-mb)", endpoint=endpoint)
        return resp.content
    encoding = resp.headers.get("content-encoding", "").strip().lower()
    if encoding not in ENCODINGS:
        raise ResponseFormatError(f"response in an encoding we did not ask for ({encoding!r})", endpoint=endpoint)
    wbits = ENCODINGS[encoding]
    inflate = None if wbits is None else zlib.decompressobj(wbits)
    parts: list[bytes] = []
    size = wire = 0
    try:
        async for chunk in resp.aiter_raw():
            wire += len(chunk)
            if wire > cap:
                raise ResponseTooLarge(f"response passed the cap of {cap} bytes (--max-response-mb)",
                                       endpoint=endpoint)  # fmt: skip
            for piece in [chunk] if inflate is None else _inflate(inflate, chunk, cap - size, encoding, endpoint):
                parts.append(piece)
                size += len(piece)
                held.now += len(piece)
                if size > cap:
                    raise ResponseTooLarge(f"response inflates past the cap of {cap} bytes ({encoding},"
                                           " --max-response-mb)", endpoint=endpoint)  # fmt: skip
                if held.now > held.limit:
                    raise ResponseTooLarge(f"responses in flight together passed {held.limit} bytes",
                                           endpoint=endpoint)  # fmt: skip
        return b"".join(parts)
    finally:
        held.now -= size


def _inflate(inflate: Any, chunk: bytes, room: int, encoding: str, endpoint: str) -> Iterator[bytes]:
    """`chunk` inflated in steps of at most STEP bytes, stopping once more than `room` came out."""
    data = chunk
    try:
        while data and room >= 0:
            piece = inflate.decompress(data, min(STEP, room + 1))
            room -= len(piece)
            yield piece
            data = inflate.unconsumed_tail
    except zlib.error as err:
        raise ResponseFormatError(f"undecodable {encoding} body: {err}", endpoint=endpoint) from None


def sent_credentials(request: httpx.Request) -> tuple[str, ...]:
    """The credential strings a request carried, longest first: the Authorization value, its token, and
    for Basic auth the decoded `user:password` and the password."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    found = {auth, value}
    if scheme.lower() == "basic":
        try:
            pair = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            pair = ""
        user, _, password = pair.partition(":")
        found |= {pair, user, password}  # a key is sometimes written as the URL's user
    return tuple(sorted((s for s in found if len(s) >= MIN_SECRET), key=len, reverse=True))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def scrub_bytes(body: bytes, secrets: tuple[str, ...]) -> bytes:
    """Each secret as is, and as JSON would escape it (a `/` as `\\/`, quotes, non-ASCII)."""
    for secret in secrets:
        spelled = {secret, jsonlib.dumps(secret)[1:-1], jsonlib.dumps(secret)[1:-1].replace("/", "\\/")}
        for form in spelled:
            body = body.replace(form.encode(), MASK.encode())
    return body


def scrub_json(value: Any, secrets: tuple[str, ...]) -> Any:
    """`value` with every string (keys included) scrubbed: for bodies whose escapes could hide a secret."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, list):
        return [scrub_json(v, secrets) for v in value]
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub_json(v, secrets) for k, v in value.items()}
    return value


def _status_error(resp: httpx.Response, body: bytes, secrets: tuple[str, ...], endpoint: str) -> HTTPStatusError:
    text = body.decode("utf-8", errors="replace")
    if 300 <= resp.status_code < 400:
        where = scrub(resp.headers.get("location", "?"), secrets)
        message = f"redirect to {where} not followed: give the final URL as --base-url"
    else:
        message = scrub(_error_message(text), secrets) or resp.reason_phrase
    retry_after = parse_retry_after(resp.headers.get("retry-after"))
    status = resp.status_code
    return HTTPStatusError(message, status=status, endpoint=endpoint, retry_after=retry_after, body=text[:2000])


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), or None."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_message(text: str) -> str:
    try:
        data = jsonlib.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail")
            if msg:
                return str(msg)[:300]
        elif isinstance(err, str):
            return err[:300]
    return text[:300]

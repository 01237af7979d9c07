"""Hostile and broken OpenAI-compatible servers: each mode is one way a server you do not control can hurt
a client. Built on the fault server (tests/support/faultserver.py: same HTTP loop, same fake model, same counts).

    with HostileServer("trickle", interval=1.0) as srv:   # srv.base_url, srv.stats(), srv.app.routes
        ...

Modes (`scope`: "completions" = only scoring requests are hostile, "all" = every route; `after=N`: the first
N scoring requests are answered normally, so a probe can pass before the trouble starts):
  trickle    a valid answer, one byte every `interval` s (a per-read timeout never fires)
  hang       accepts the request and never answers (the connection stays open)
  huge       200 + a valid answer padded with `size` bytes of numbers (default 200 MB; Content-Length set)
  endless    200, chunked, a body of numbers that never ends
  gzip_bomb  200, Content-Encoding gzip: ~1 MB on the wire that inflates to `size` (default 1 GB) of JSON
             whitespace followed by a valid answer
  inf        token logprobs +Infinity and -Infinity (JSON extension Python accepts)
  positive   token logprobs above 0 (+1..+4, one 1e300)
  ties       every token logprob is -1.0 (every ordering scores the same)
  noise      every token logprob random in (-8, -0.1), independent of the prompt's meaning
  redirect   every route answers 307 with a Location and the normal JSON body
  garbled    scoring answers are 200 with a JSON body that is not a completions response
  echo_key   answers normally but echoes the request's credentials (Authorization header, and the password of
             Basic auth) in /models (owned_by, root), /version, and errors: a 500 on every 5th scoring request
             and a 400 for every prompt containing `refuse`
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import random
import struct
import zlib
from collections import Counter
from functools import cache
from typing import Any

from tests.support.faultserver import FaultServer, _App, _error, _response, prompt_key

MODES = ("trickle", "hang", "huge", "endless", "gzip_bomb", "inf", "positive", "ties", "noise", "redirect",
         "garbled", "echo_key")  # fmt: skip
MB = 1 << 20


@cache
def _bomb_body(size: int) -> tuple[bytes, int]:
    """Raw deflate of `size` spaces (valid JSON whitespace) as repeated full-flushed segments, and their CRC."""
    block = b" " * MB
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = co.compress(block) + co.flush(zlib.Z_FULL_FLUSH)  # byte-aligned, no reference to earlier data
    crc = 0
    for _ in range(size // MB):
        crc = zlib.crc32(block, crc)
    return segment * (size // MB), crc


def gzip_bomb(answer: bytes, size: int) -> bytes:
    """A gzip member that inflates to `size` spaces then `answer` (~1 KB on the wire per MB inflated)."""
    body, crc = _bomb_body(size)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = co.compress(answer) + co.flush()
    trailer = struct.pack("<II", zlib.crc32(answer, crc), (size // MB * MB + len(answer)) & 0xFFFFFFFF)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + body + tail + trailer


def credentials(headers: dict[str, str]) -> list[str]:
    """What the client sent as credentials: the Authorization value, and Basic auth's password."""
    auth = headers.get("authorization", "")
    out = [auth] if auth else []
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "basic":
        with contextlib.suppress(ValueError):
            out.append(base64.b64decode(value).decode().partition(":")[2])
    elif scheme.lower() == "bearer":
        out.append(value)
    return out


class HostileApp(_App):
    def __init__(self, mode: str, *, scope: str = "completions", after: int = 0, interval: float = 5.0,
                 size: int | None = None, seed: int = 0, model: str = "fake-model") -> None:  # fmt: skip
        if mode not in MODES or scope not in ("completions", "all"):
            raise ValueError(f"unknown mode {mode!r} or scope {scope!r}; modes: {', '.join(MODES)}")
        super().__init__([], seed, model, (), None, die_hard=False)
        self.mode, self.scope, self.after, self.interval = mode, scope, after, interval
        self.size = size if size is not None else (1024 if mode == "gzip_bomb" else 200) * MB
        self.routes: Counter[str] = Counter()  # requests received per route, hostile or not
        self.bytes_sent = 0

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        self.bytes_sent += len(data)
        await super()._send(writer, data)

    async def _route(self, method: str, path: str, body: bytes, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, headers: dict[str, str]) -> bool:  # fmt: skip
        self.routes[f"{method} {path}"] += 1
        scoring = method == "POST" and path == "/v1/completions"
        keys = _prompt_keys(body) if scoring else []
        if scoring:
            n = self.stats.requests + 1
            self.record({"e": "request", "n": n, "prompts": keys})
            hostile = n > self.after
        else:
            hostile = self.scope == "all" and path != "/_stats"
        if self.mode == "echo_key":
            return await self._echo_key(method, path, body, writer, headers, scoring, keys)
        if not hostile or (self.mode in ("inf", "positive", "ties", "noise", "garbled") and not scoring):
            return await self._normal(method, path, body, writer, scoring, keys)
        if self.mode == "hang":
            await reader.read()  # until the client goes away
            return False
        answer = self._answer(method, path, body)
        if self.mode == "trickle":
            data = _response(200, answer)
            for i in range(len(data)):
                await self._send(writer, data[i : i + 1])
                await asyncio.sleep(self.interval)
            return True
        if self.mode == "huge":
            await self._huge(writer, answer)
            return True
        if self.mode == "endless":
            head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            await self._send(writer, head.encode())
            chunk = b"0.5," * (MB // 16)  # 256 KB
            block = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            await self._send(writer, b"1\r\n[\r\n")
            sent = 1
            while sent + len(chunk) <= self.size:  # never past `size`; then hold the connection open, sending
                await self._send(writer, block)  # nothing, until the client leaves
                sent += len(chunk)
            await reader.read()
            return False
        if self.mode == "gzip_bomb":
            data = gzip_bomb(answer, self.size)
            await self._send(writer, _response(200, data, {"content-encoding": "gzip"}))
            return True
        if self.mode == "redirect":
            await self._send(writer, _response(307, answer, {"location": f"http://127.0.0.1:9{path}"}))
            return True
        if scoring:
            answer = self._scoring_answer(body, self.mode)
            await self._send(writer, _response(200, answer))
            self.record({"e": "scored", "prompts": keys})
            return True
        raise AssertionError(self.mode)

    async def _normal(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter, scoring: bool,
                      keys: list[str]) -> bool:  # fmt: skip
        if scoring:
            answer = self._scoring_answer(body, "clean" if self.stats.requests <= self.after else self.mode)
            await self._send(writer, _response(200, answer))
            self.record({"e": "scored", "prompts": keys})
            return True
        if path == "/_stats":
            await self._send(writer, _response(200, json.dumps(self.snapshot(0).to_json()).encode()))
            return True
        status = 200 if path in ("/v1/models", "/version") else 404
        await self._send(writer, _response(status, self._answer(method, path, body)))
        return True

    def _answer(self, method: str, path: str, body: bytes) -> bytes:
        """The answer a well-behaved server would give."""
        if path == "/v1/models":
            entry = {"id": self.fake.model, "object": "model", "owned_by": "vllm", "max_model_len": 2048}
            return json.dumps({"object": "list", "data": [entry]}).encode()
        if path == "/version":
            return b'{"version": "0.0-hostile"}'
        if method == "POST" and path == "/v1/completions":
            return self._scoring_answer(body, "clean")
        return json.dumps({"object": "error", "message": f"no route {method} {path}"}).encode()

    def _scoring_answer(self, body: bytes, mode: str) -> bytes:
        try:
            req = json.loads(body)
            prompts = req["prompt"] if isinstance(req["prompt"], list) else [req["prompt"]]
            max_tokens = int(req.get("max_tokens", 16))
        except (ValueError, TypeError, KeyError):
            return b'{"object": "error", "message": "bad request"}'
        if mode == "garbled":
            return json.dumps({"id": "cmpl-x", "choices": "the server is having a bad day"}).encode()
        choices = [self.fake.choice(p, i, max_tokens) for i, p in enumerate(prompts)]
        for c, p in zip(choices, prompts, strict=True):
            lps = c["logprobs"]["token_logprobs"]
            for k in range(1, len(lps)):
                lps[k] = _poison(mode, p, k, lps[k], self.seed)
        n_prompt = sum(len(c["logprobs"]["tokens"]) - (1 if max_tokens else 0) for c in choices)
        payload = {"id": "cmpl-h", "object": "text_completion", "model": self.fake.model, "choices": choices,
                   "usage": {"prompt_tokens": n_prompt}}  # fmt: skip
        return json.dumps(payload).encode()  # allow_nan: Infinity goes out as the JSON extension

    async def _huge(self, writer: asyncio.StreamWriter, answer: bytes) -> None:
        head = answer[:-1] + b', "padding": ['
        tail = b"0]}"
        pad = b"0.5," * (MB // 4)
        n_blocks = max(0, (self.size - len(head) - len(tail)) // len(pad))
        length = len(head) + n_blocks * len(pad) + len(tail)
        await self._send(writer, _response(200, head, length=length))
        for _ in range(n_blocks):
            await self._send(writer, pad)
        await self._send(writer, tail)

    async def _echo_key(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter,
                        headers: dict[str, str], scoring: bool, keys: list[str]) -> bool:  # fmt: skip
        echo = " ".join(credentials(headers)) or "no-credentials"
        if path == "/v1/models":
            entry = {"id": self.fake.model, "object": "model", "owned_by": f"team of {echo}", "max_model_len": 2048,
                     "root": f"/models/{echo}/weights"}  # fmt: skip
            await self._send(writer, _response(200, json.dumps({"object": "list", "data": [entry]}).encode()))
        elif path == "/version":
            await self._send(writer, _response(200, json.dumps({"version": f"1.0 (licensed to {echo})"}).encode()))
        elif scoring and self.stats.requests % 5 == 0:
            await self._send(writer, _error(500, f"upstream refused key {echo}"))
        elif scoring and b"refuse" in body:
            await self._send(writer, _error(400, f"prompt refused for key {echo}"))
        elif scoring:
            await self._send(writer, _response(200, self._scoring_answer(body, "clean")))
            self.record({"e": "scored", "prompts": keys})
        else:
            await self._send(writer, _error(404, f"no route {method} {path} for {echo}"))
        return True


def _prompt_keys(body: bytes) -> list[str]:
    try:
        prompt = json.loads(body)["prompt"]
    except (ValueError, KeyError, TypeError):
        return []
    return [prompt_key(p) for p in (prompt if isinstance(prompt, list) else [prompt]) if isinstance(p, str)]


def _poison(mode: str, prompt: str, k: int, value: float, seed: int) -> float:
    if mode == "inf":
        return float("inf") if k % 2 else float("-inf")
    if mode == "positive":
        return 1e300 if k == 1 else 1.0 + k % 4
    if mode == "ties":
        return -1.0
    if mode == "noise":
        h = hashlib.sha256(f"{seed}\x00{k}\x00{prompt}".encode()).digest()
        return -0.1 - 7.9 * random.Random(h).random()
    return value


class HostileServer(FaultServer):
    """A hostile mode served from a background thread: `with HostileServer("hang") as srv:`."""

    def __init__(self, mode: str, **kw: Any) -> None:
        self.hostile = HostileApp(mode, **kw)
        super().__init__(app=self.hostile)

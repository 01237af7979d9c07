"""A real HTTP server that imitates vLLM's `/v1/completions` (echo + logprobs) and injects faults on demand.

In-process:  `with FaultServer(faults="429,every=3,retry_after=1; reset,p=0.2", seed=7) as srv:` then
             `srv.base_url` ("http://127.0.0.1:P/v1"), `srv.stats()`. Runs in a thread with its own asyncio loop.
Subprocess:  `python -m tests.support.faultserver --port P --faults SPEC --seed S --state-file F`,
             or `FaultServerProcess`,
             so a test can kill/restart the client or the server (the state file keeps the counts).

Fault spec: rules separated by ";", each `KIND[,KEY=VALUE]...`. Completion requests are numbered n = 1, 2, ... over
the server's life (continued from the state file after a restart); the first rule that matches n decides the fault.
Triggers (all given must hold; none given = every request): every=N (n % N == 0), first=N (n <= N), after=N
(n > N), at=3|7 (exactly those n), p=F (a coin seeded by (seed, n, rule): same seed, same schedule, restarts too).
Kinds (options in brackets):
  429 500 502 503 (any 4xx/5xx)  vLLM-style JSON error body [retry_after=S adds `Retry-After: S`]
  reset     200 headers + part of the body, then RST (SO_LINGER 0) [keep=0.5 of the body, delay=0.05 s before RST]
  truncate  200 whose body is cut [keep=0.5] with a Content-Length that matches the cut: valid HTTP, broken JSON
  invalid   200, application/json, body is an HTML page
  short     200, every choice's token_logprobs lacks its last [drop=1] entries
  null      200, token_logprobs[pos] is null in every choice [pos=1, clamped to the last token]
  slow      sleep [seconds=2.0], then answer normally (scored only if the client is still connected)
  drop      RST without any response
  die       subprocess: os._exit(3) on receiving the request; in-process: the server stops (port closed, conns cut)
  mix       one of [kinds=429|500|...] picked by a coin seeded like p (default: the transient kinds above)
`die,at=3` dies once: after a restart with the same spec the numbering goes on past 3.

Accounting (`Stats`; GET /_stats; `read_state(file)`): completion requests received, prompts scored (a 200 with
valid logprobs fully written, i.e. every byte handed to the kernel: a client killed after that still counts), both
per prompt (Counter keyed by `prompt_key` = sha256 of the prompt text), faults by kind, server starts. `stats()` and
/_stats first wait (up to 2 s) until no completion request is in flight, so a count is never read between a response
going out and its being counted. With a state file every event is appended as a JSON line and flushed at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support.fakeserver import FakeServer, tokenize

REPO_ROOT = Path(__file__).resolve().parents[2]
MIX_DEFAULT = ("429", "500", "502", "503", "reset", "truncate", "invalid", "short", "null")
KINDS = frozenset({*MIX_DEFAULT, "slow", "drop", "die", "mix"})
_OPTS: dict[str, Callable[[str], Any]] = {
    "every": int, "first": int, "after": int, "p": float, "at": lambda v: frozenset(int(x) for x in v.split("|")),
    "retry_after": str, "keep": float, "delay": float, "drop": int, "pos": int, "seconds": float,
    "kinds": lambda v: tuple(v.split("|")),
}  # fmt: skip


def prompt_key(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def _is_status(kind: str) -> bool:
    return kind.isdigit() and int(kind) >= 400 and int(kind) in {s.value for s in HTTPStatus}


@dataclass(frozen=True)
class Rule:
    kind: str
    every: int = 0
    first: int = 0
    after: int = 0
    at: frozenset[int] = frozenset()
    p: float = 1.0
    retry_after: str | None = None
    keep: float = 0.5
    delay: float = 0.05
    drop: int = 1
    pos: int = 1
    seconds: float = 2.0
    kinds: tuple[str, ...] = MIX_DEFAULT

    def __post_init__(self) -> None:
        bad = [k for k in (self.kind, *self.kinds) if k not in KINDS and not _is_status(k)]
        if bad or any(k in ("mix", "die") for k in self.kinds):
            raise ValueError(f"unknown fault kind(s) {bad or list(self.kinds)}; known: {sorted(KINDS)} or a status")

    def matches(self, n: int, seed: int, index: int) -> bool:
        if (self.every and n % self.every) or (self.first and n > self.first) or (self.after and n <= self.after):
            return False
        if self.at and n not in self.at:
            return False
        return self.p >= 1.0 or random.Random(f"{seed}:{n}:{index}").random() < self.p

    def concrete(self, n: int, seed: int, index: int) -> str:
        return random.Random(f"{seed}:{n}:{index}:mix").choice(self.kinds) if self.kind == "mix" else self.kind


def parse_faults(spec: str | Sequence[Rule]) -> list[Rule]:
    if not isinstance(spec, str):
        return list(spec)
    rules = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        kind, *opts = (x.strip() for x in part.split(","))
        kw: dict[str, Any] = {}
        for opt in opts:
            key, sep, value = opt.partition("=")
            if not sep or key.strip() not in _OPTS:
                raise ValueError(f"bad option {opt!r} in fault rule {part!r}; options: {sorted(_OPTS)}")
            kw[key.strip()] = _OPTS[key.strip()](value.strip())
        rules.append(Rule(kind, **kw))
    return rules


def schedule(spec: str | Sequence[Rule], seed: int, n_requests: int) -> list[str | None]:
    """The fault (or None) each of requests 1..n_requests gets: what a server with this spec and seed will do."""
    rules = parse_faults(spec)
    return [_pick(rules, seed, n)[0] for n in range(1, n_requests + 1)]


def _pick(rules: Sequence[Rule], seed: int, n: int) -> tuple[str | None, Rule | None]:
    for i, rule in enumerate(rules):
        if rule.matches(n, seed, i):
            return rule.concrete(n, seed, i), rule
    return None, None


@dataclass
class Stats:
    requests: int = 0
    scored: int = 0
    starts: int = 0
    requests_by_prompt: Counter[str] = field(default_factory=Counter)
    scored_by_prompt: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def apply(self, ev: dict[str, Any]) -> None:
        if ev["e"] == "start":
            self.starts += 1
        elif ev["e"] == "request":
            self.requests += 1
            self.requests_by_prompt.update(ev["prompts"])
        elif ev["e"] == "fault":
            self.faults[ev["kind"]] += 1
        elif ev["e"] == "scored":
            self.scored += len(ev["prompts"])
            self.scored_by_prompt.update(ev["prompts"])

    def scored_count(self, prompt: str) -> int:
        return self.scored_by_prompt[prompt_key(prompt)]

    def request_count(self, prompt: str) -> int:
        return self.requests_by_prompt[prompt_key(prompt)]

    def to_json(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, Counter) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Stats:
        kw: dict[str, Any] = {k: Counter(v) if isinstance(v, dict) else v for k, v in d.items()}
        return cls(**kw)


def read_state(path: str | os.PathLike[str]) -> Stats:
    """Sum a state file's events (a torn last line, if any, is ignored)."""
    stats = Stats()
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as f:
        for line in f:
            with contextlib.suppress(json.JSONDecodeError):
                stats.apply(json.loads(line))
    return stats


def _response(status: int, body: bytes, extra: dict[str, str] | None = None, length: int | None = None) -> bytes:
    headers = {"content-type": "application/json", "content-length": str(len(body) if length is None else length)}
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in {"server": "faultserver", **headers, **(extra or {})}.items()
    )
    return (head + "\r\n").encode("latin-1") + body


def _error(status: int, message: str, extra: dict[str, str] | None = None) -> bytes:
    err = {"object": "error", "message": message, "type": HTTPStatus(status).phrase, "param": None, "code": status}
    return _response(status, json.dumps(err).encode(), extra)


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _App:
    """Server state and the HTTP/1.1 loop (keep-alive, Content-Length bodies) shared by both modes."""

    def __init__(self, rules: Sequence[Rule], seed: int, model: str, preferred: Sequence[str],
                 state_file: str | os.PathLike[str] | None, die_hard: bool) -> None:  # fmt: skip
        self.rules, self.seed, self.die_hard = list(rules), seed, die_hard
        self.fake = FakeServer(model=model, preferred=set(preferred))
        self.lock = threading.Condition()
        self.inflight = 0  # completion requests not yet answered and counted
        self.stats = read_state(state_file) if state_file else Stats()
        self._file = open(state_file, "a", encoding="utf-8") if state_file else None  # noqa: SIM115
        self._conns: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}
        self.died = False
        self.record({"e": "start", "pid": os.getpid()})

    def record(self, ev: dict[str, Any]) -> None:
        with self.lock:
            self.stats.apply(ev)
            if self._file is not None:
                self._file.write(json.dumps(ev) + "\n")
                self._file.flush()

    def snapshot(self, settle: float = 2.0) -> Stats:
        """The counts once no completion request is in flight (waits up to `settle` s; not from the loop thread)."""
        with self.lock:
            self.lock.wait_for(lambda: self.inflight == 0, settle)
            return Stats.from_json(self.stats.to_json())

    def _busy(self, delta: int) -> None:
        with self.lock:
            self.inflight += delta
            self.lock.notify_all()

    async def run(self, host: str, port: int, started: Callable[[int], None]) -> None:
        self.stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, host, port)
        started(server.sockets[0].getsockname()[1])
        try:
            await self.stopping.wait()
        finally:
            server.close()
            for writer, task in list(self._conns.items()):
                writer.transport.abort()
                task.cancel()
            await asyncio.gather(*self._conns.values(), return_exceptions=True)
            if self._file is not None:
                self._file.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[writer] = task
        writer.transport.set_write_buffer_limits(0)  # drain() returns once every byte is in the kernel
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                if not await self._route(method, target.split("?")[0], body, reader, writer, headers):
                    return
                if headers.get("connection", "").lower() == "close":
                    break
            writer.close()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            writer.transport.abort()
        except asyncio.CancelledError:  # shutting down; end quietly (3.11's stream callback chokes on cancelled)
            writer.transport.abort()
        finally:
            self._conns.pop(writer, None)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def _route(self, method: str, path: str, body: bytes, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, headers: dict[str, str]) -> bool:  # fmt: skip
        """Answer one request; False when the connection is gone (or must go)."""
        if method == "GET" and path == "/v1/models":
            entry = {"id": self.fake.model, "object": "model", "owned_by": "vllm", "max_model_len": 2048}
            await self._send(writer, _response(200, json.dumps({"object": "list", "data": [entry]}).encode()))
        elif method == "GET" and path == "/version":
            await self._send(writer, _response(200, b'{"version": "0.0-faultserver"}'))
        elif method == "GET" and path == "/_stats":
            deadline = time.monotonic() + 2.0
            while self.inflight and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            await self._send(writer, _response(200, json.dumps(self.snapshot(0).to_json()).encode()))
        elif method == "POST" and path == "/v1/completions":
            self._busy(1)
            try:
                return await self._completions(body, reader, writer)
            finally:
                self._busy(-1)
        else:
            await self._send(writer, _error(404, f"no route {method} {path}"))
        return True

    async def _completions(self, body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            req = json.loads(body)
            prompts = req["prompt"] if isinstance(req["prompt"], list) else [req["prompt"]]
            if not prompts or not all(isinstance(p, str) for p in prompts):
                raise TypeError("prompt must be a string or a non-empty list of strings")
            max_tokens = int(req.get("max_tokens", 16))
        except (ValueError, TypeError, KeyError) as err:
            await self._send(writer, _error(400, f"bad request: {err}"))
            return True
        keys = [prompt_key(p) for p in prompts]
        n = self.stats.requests + 1  # only the loop thread mutates stats
        self.record({"e": "request", "n": n, "prompts": keys})
        kind, rule = _pick(self.rules, self.seed, n)
        if kind is not None:
            self.record({"e": "fault", "n": n, "kind": kind})
        if kind == "die":
            if self.die_hard:
                os._exit(3)
            self.died = True
            self.stopping.set()
        if kind in ("die", "drop"):
            _rst(writer)
            return False
        if kind is not None and _is_status(kind):
            extra = {"retry-after": rule.retry_after} if rule and rule.retry_after is not None else None
            await self._send(writer, _error(int(kind), f"injected fault {kind}", extra))
            return True
        if req.get("model") != self.fake.model:
            await self._send(writer, _error(404, f"The model `{req.get('model')}` does not exist."))
            return True
        choices = [self.fake.choice(p, i, max_tokens) for i, p in enumerate(prompts)]
        for c in choices:
            lps = c["logprobs"]["token_logprobs"]
            if kind == "short" and rule is not None:
                del lps[max(1, len(lps) - rule.drop) :]
            elif kind == "null" and rule is not None:
                lps[max(1, min(rule.pos, len(lps) - 1))] = None
        n_prompt, n_gen = sum(len(tokenize(p)) for p in prompts), len(prompts) if max_tokens else 0
        usage = {"prompt_tokens": n_prompt, "completion_tokens": n_gen, "total_tokens": n_prompt + n_gen}
        payload = {"id": f"cmpl-{n}", "object": "text_completion", "created": int(time.time()),
                   "model": self.fake.model, "choices": choices, "usage": usage}  # fmt: skip
        data = json.dumps(payload).encode()
        if kind == "slow" and rule is not None:
            await asyncio.sleep(rule.seconds)
            if reader.at_eof():  # the client gave up: nothing was delivered
                writer.transport.abort()
                return False
        if kind == "reset" and rule is not None:
            await self._send(writer, _response(200, data[: int(len(data) * rule.keep)], length=len(data)))
            await asyncio.sleep(rule.delay)
            _rst(writer)
            return False
        if kind == "truncate" and rule is not None:
            data = data[: int(len(data) * rule.keep)]
        elif kind == "invalid":
            data = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        await self._send(writer, _response(200, data))
        if kind in (None, "slow"):
            self.record({"e": "scored", "n": n, "prompts": keys})
        return True


class FaultServer:
    """The fault server in a background thread of this process; `with FaultServer(...) as srv:`.

    `app`: another `_App` (a subclass with its own routes, e.g. tests/support/hostile.py) run the same way."""

    def __init__(self, faults: str | Sequence[Rule] = "", seed: int = 0, *, model: str = "fake-model",
                 preferred: Sequence[str] = (), host: str = "127.0.0.1", port: int = 0,
                 state_file: str | os.PathLike[str] | None = None, app: _App | None = None) -> None:  # fmt: skip
        self.app = app or _App(parse_faults(faults), seed, model, preferred, state_file, die_hard=False)
        self.host, self.port, self.url, self.base_url = host, port, "", ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="faultserver", daemon=True)

    @property
    def died(self) -> bool:
        return self.app.died

    def stats(self) -> Stats:
        return self.app.snapshot()

    def _main(self) -> None:
        def started(port: int) -> None:
            self.port, self._loop = port, asyncio.get_running_loop()
            self.url = f"http://{self.host}:{port}"
            self.base_url = f"{self.url}/v1"
            self._ready.set()

        try:
            asyncio.run(self.app.run(self.host, self.port, started))
        except BaseException as err:  # surfaced by start()
            self._error = err
        finally:
            self._ready.set()

    def start(self) -> FaultServer:
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None or not self._ready.is_set():
            raise RuntimeError(f"fault server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self.app.stopping.set)
        if self._thread.ident is not None:
            self._thread.join(10.0)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FaultServerProcess:
    """The fault server as a subprocess (`python -m tests.support.faultserver`): kill it, let it die, restart it."""

    def __init__(self, state_file: str | os.PathLike[str], faults: str = "", seed: int = 0, *,
                 model: str = "fake-model", port: int = 0) -> None:  # fmt: skip
        self.state_file, self.faults, self.seed, self.model = Path(state_file), faults, seed, model
        self.port = port or free_port()
        self.url, self.base_url = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, faults: str | None = None, timeout: float = 10.0) -> FaultServerProcess:
        self.faults = self.faults if faults is None else faults
        args = ["--port", str(self.port), "--faults", self.faults, "--seed", str(self.seed), "--model", self.model]
        with open(f"{self.state_file}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.faultserver", *args, "--state-file", str(self.state_file)],
                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fault server exited with {self.proc.returncode}; see {self.state_file}.log")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"fault server not listening on port {self.port} after {timeout} s")

    def restart(self, faults: str | None = None) -> FaultServerProcess:
        self.kill()
        return self.start(faults)

    def wait(self, timeout: float = 5.0) -> int:
        """Exit code once the server has exited (3 after a `die` fault)."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5.0)

    def stats(self) -> Stats:
        """GET /_stats while the server runs (it waits for in-flight requests), else the state file's sums."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                return Stats.from_json(httpx.get(f"{self.url}/_stats", timeout=5).json())
        return read_state(self.state_file)

    def __enter__(self) -> FaultServerProcess:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.kill()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.support.faultserver", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    ap.add_argument("--faults", default="", help="fault spec, see the module docstring")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--state-file", default=None, help="append-only JSON lines of events; counts survive restarts")
    args = ap.parse_args(argv)
    app = _App(parse_faults(args.faults), args.seed, args.model, (), args.state_file, die_hard=True)

    def started(port: int) -> None:
        print(f"faultserver listening on http://{args.host}:{port}/v1", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(app.run(args.host, args.port, started))


if __name__ == "__main__":
    main()

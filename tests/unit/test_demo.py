"""`auditor demo` end to end in this process, on a tiny model built here (the real demo, SmolLM2, is the
`demo` marker's test in tests/integration/test_demo.py): exit 0, the verdict printed equals report.json's,
the reports' paths and the next command are printed, a second run is served from the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="auditor demo needs the [local] extra (torch, transformers)")
pytest.importorskip("transformers", reason="auditor demo needs the [local] extra (torch, transformers)")

from auditor.cli import main
from tests.tiny_model import build_tiny_model


def printed_verdict(out: str) -> str:
    """The verdict as the terminal shows it: the first line that starts with 'verdict'."""
    line = next(ln for ln in out.splitlines() if ln.lower().startswith("verdict"))
    return line.split(":", 1)[1].strip() if ":" in line else line.split(None, 1)[1].strip()


def check_demo_output(out: str, report_dir: Path) -> dict[str, object]:
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    verdict = report["summary"]["verdict"]
    shown = printed_verdict(out)
    assert shown.split(" (")[0] == verdict.replace("_", " "), (shown, verdict)
    assert str(report_dir / "report.json") in out and str(report_dir / "report.md") in out
    assert "auditor run --base-url" in out.splitlines()[-1]  # the last words: how to audit your own endpoint
    assert "auditor probe --base-url" in out
    return report


def test_demo_runs_to_a_verdict_and_says_what_next(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = build_tiny_model(tmp_path / "tiny", bos=True)
    out_dir = tmp_path / "demo"
    args = ["demo", "--model", str(model), "--items", "8", "--out", str(out_dir), "--cache", str(tmp_path / "c.sqlite")]
    assert main(args) == 0
    first = capsys.readouterr().out
    report = check_demo_output(first, out_dir)
    assert report["summary"]["n_items"] + report["summary"]["n_failed"] == 8
    prov = report["provenance"]
    assert prov["orderings"] == "cyclic" and prov["dataset"]["bundled"]["name"] == "mmlu"
    assert prov["dataset"]["description"].startswith("8 of the bundled `mmlu` sample")
    assert "the 4 rotations of its options" in first and "weak signals" in first
    js = (out_dir / "report.json").read_bytes()

    assert main(args) == 0  # again: every prompt from the cache, the same report
    second = capsys.readouterr().out
    check_demo_output(second, out_dir)
    assert "0 scored" in second and (out_dir / "report.json").read_bytes() == js

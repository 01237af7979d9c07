"""Every flag's value is checked in one place (auditor/run/config.py and the config dataclasses), before
anything is read or sent: one line naming the flag, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.cli import main


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--timeout", "nan"], "--timeout must be a positive number"),
        (["--timeout", "-1"], "--timeout must be a positive number"),
        (["--max-time", "nan"], "--max-time must be positive"),
        (["--max-tokens", "0"], "--max-tokens must be positive"),
        (["--seed", "-1"], "--seed must be at least 0"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--max-orderings", "1"], "--max-orderings must be at least 2"),
        (["--alpha", "nan"], "--alpha must be between 0 and 1"),
        (["--tolerance", "1.5"], "--tolerance must be between 0 and 1"),
        (["--orderings", "sample:1"], "K must be at least 2"),
        (["--limit", "3", "--items", "3"], "not both"),
    ],
)
def test_bad_flag_values_are_one_line_and_exit_2(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["run", "--base-url", "http://127.0.0.1:9/v1", "--dataset", str(tmp_path / "none.jsonl")]
    rc = main([*base, "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c.sqlite"), *flags])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "c.sqlite").exists() and not (tmp_path / "out").exists()

"""Fail fast, once (issue 14 point 4): nothing listening, an unknown host, a malformed URL, a wrong --model
and a repeated --base-url each end in one line, quickly, with the error said once."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import respx

from auditor.cli import main
from auditor.errors import Unreachable
from auditor.scoring.retry import RetryPolicy, classify
from tests.support.fakeserver import FakeServer


def closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["probe", "run", "estimate"])
def test_closed_port_is_one_line_in_under_3_s(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [command, "--base-url", f"http://127.0.0.1:{closed_port()}/v1", "--cache", str(tmp_path / "c.sqlite")]
    if command != "probe":
        ds = tmp_path / "ds.jsonl"
        ds.write_text('{"question": "Q?", "choices": ["a", "b", "c"], "answer": 0}\n', encoding="utf-8")
        args += ["--dataset", str(ds)] + (["--out", str(tmp_path / "out")] if command == "run" else [])
    t0 = time.monotonic()
    code = main(args)
    took = time.monotonic() - t0
    out, err = capsys.readouterr()
    assert code == 4 and took < 3.0, (took, err)
    assert out == "" and len(err.strip().splitlines()) == 1 and "cannot connect" in err, err


def test_unknown_host_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    code = main(["probe", "--base-url", "http://no-such-host.invalid:8000/v1", "--cache", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 4 and time.monotonic() - t0 < 3.0 and len(err.strip().splitlines()) == 1 and "cannot connect" in err


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://127.0.0.1/v1", "http:///v1", "127.0.0.1:8000/v1"])
def test_malformed_url_is_a_usage_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--base-url", url]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "http(s) URL" in err and "e.g. http://127.0.0.1:8000/v1" in err


def test_wrong_model_is_said_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    router = respx.mock(assert_all_called=False)
    router.route(host="fake.test").mock(side_effect=FakeServer().handler)
    with router:
        code = main(["probe", "--base-url", "http://fake.test/v1", "--model", "nope", "--cache", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert code == 4 and out == "" and len(err.strip().splitlines()) == 1
    assert err.count("is not served here") == 1 and "fake-model" in err


def test_two_base_urls_are_replicas_for_run_but_an_error_for_probe(capsys: pytest.CaptureFixture[str]) -> None:
    """Never silently the last one: `run` takes them as replicas of one model (tests/unit/test_replicas.py),
    `probe` checks one endpoint and says so in one line."""
    assert main(["probe", "--base-url", "http://a.test/v1", "--base-url", "http://b.test/v1"]) == 2
    err = capsys.readouterr().err
    assert "probe checks one endpoint" in err and len(err.strip().splitlines()) == 1


async def test_unreachable_is_retried_only_where_the_server_answered_before() -> None:
    calls: list[int] = []

    async def refused() -> None:
        calls.append(1)
        raise Unreachable("cannot connect")

    assert classify(Unreachable("x")).kind == "unreachable"
    with pytest.raises(Unreachable):
        await RetryPolicy(attempts=4, base_wait=0.0).call(refused)
    assert len(calls) == 1  # first contact: the answer is "nothing there"
    calls.clear()
    with pytest.raises(Unreachable):
        await RetryPolicy(attempts=4, base_wait=0.0, retry_unreachable=True).call(refused)
    assert len(calls) == 4  # scoring, after the probe answered: a restart is worth waiting for

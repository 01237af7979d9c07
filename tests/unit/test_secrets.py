"""Keys in URLs and keys given where a name or path belongs: taken out, sent, never echoed."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.endpoint.config import EndpointConfig, endpoint_secrets, http_client
from auditor.endpoint.secrets import resolve_api_key, split_url_credentials
from auditor.errors import UsageError

KEY = "sk-test-0123456789abcdef"


def test_userinfo_leaves_the_url_and_becomes_basic_auth() -> None:
    ep = EndpointConfig(base_url=f"http://auditor:{KEY}@127.0.0.1:8000/v1")
    assert ep.base_url == "http://127.0.0.1:8000/v1" and KEY not in repr(ep)
    assert endpoint_secrets(ep) == (KEY,)
    header = http_client(ep).headers["authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == f"auditor:{KEY}"
    assert endpoint_secrets(EndpointConfig(base_url=f"http://{KEY}@h/v1")) == (KEY,)  # the key as the user


def test_url_with_a_query_is_refused_without_echo() -> None:
    with pytest.raises(UsageError, match="query string") as info:
        split_url_credentials(f"http://h/v1?api_key={KEY}")
    assert KEY not in str(info.value)


def test_key_in_env_and_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_TEST_KEY", KEY)
    with pytest.raises(UsageError, match="not both"):
        http_client(EndpointConfig(base_url=f"http://u:{KEY}@h/v1", api_key_env="AUDITOR_TEST_KEY"))


def test_a_key_given_as_the_name_or_path_is_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--api-key-env", "--api-key-file"):
        assert main(["probe", "--base-url", "http://127.0.0.1:9/v1", flag, KEY, "--cache", str(tmp_path / "c")]) == 2
        err = capsys.readouterr().err
        assert KEY not in err and "not shown" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UsageError, match="MY_KEY is not set"):  # a name still is named
        resolve_api_key("MY_KEY", None, {})

"""The CLI end to end against an in-process fake server (respx): run, re-run from cache, probe, errors."""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import respx

from auditor.cli import main
from auditor.input.items import load_items
from auditor.prompts.orderings import PAPER
from auditor.run.codes import ExitCode
from auditor.run.collector import YOUNG_THRESHOLD
from tests.conftest import DATA_SLICES
from tests.support.fakeserver import FakeServer
from tests.unit.test_items import CASES, _write_case

BASE = "http://fake.test/v1"
TOO_FEW = ExitCode.UNDECIDED  # 1-2 items cannot reach a verdict: exit 6


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    d = tmp_path / "mmlu"
    d.mkdir()
    for name in ("anatomy_test.csv", "astronomy_test.csv"):  # no two of these items share an option list
        lines = (DATA_SLICES / "mmlu" / "test" / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (d / name).write_text("".join(lines[:10]), encoding="utf-8")
    return d


def serve(server: FakeServer) -> respx.MockRouter:
    router = respx.mock(assert_all_called=False)
    router.route(host="fake.test").mock(side_effect=server.handler)
    return router


def test_run_rerun_identical_from_cache(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = load_items(dataset).items
    leaked_ids = {it.id for it in items[::3]}
    server = FakeServer(preferred={PAPER.render(it, tuple(range(4))).text for it in items if it.id in leaked_ids})
    out = tmp_path / "run"
    args = [
        "run",
        "--base-url",
        BASE,
        "--model",
        "fake-model",
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "c.sqlite"),
        "--batch-size",
        "10",
    ]
    with serve(server):
        assert main(args) == 0
    first = capsys.readouterr().out
    assert "20 scored" in first and "480 scored" in first
    report = json.loads((out / "report.json").read_text())
    s = report["summary"]
    assert s["n_items"] == 20 and s["n_failed"] == 0
    flagged = {it["id"] for it in report["items"] if it["top1"]}
    assert len(leaked_ids - flagged) <= 1  # the fake server's bonus is capped below 0: a long prompt may not win
    assert s["chance_rate"] == pytest.approx(1 / 24)
    assert s["p_top1"] < 1e-3 and s["verdict"] == "leakage" and s["p_verdict"] < 1e-3
    assert report["items"][0]["id"] == "anatomy_test:0" and len(report["items"][0]["scores"]) == 24
    prov = report["provenance"]
    assert prov["endpoint"]["model"] == "fake-model" and prov["endpoint"]["server_version"] == "0.0-fake"
    assert len(prov["dataset"]["sha256"]) == 64 and prov["template"]["name"] == "paper"
    md1, js1 = (out / "report.md").read_bytes(), (out / "report.json").read_bytes()
    requests_after_first = server.completion_requests

    with serve(server):
        assert main(args) == 0
    second = capsys.readouterr().out
    assert server.completion_requests == requests_after_first  # nothing re-scored, probe cached too
    assert "0 scored" in second and "480 from cache" in second and "probe cached" in second
    assert (out / "report.json").read_bytes() == js1 and (out / "report.md").read_bytes() == md1


@contextmanager
def serve_noting_auth(server: FakeServer) -> Iterator[list[str]]:
    """The fake server, noting every request's Authorization header ("" when absent)."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return server.handler(request)

    with respx.mock(assert_all_called=False) as router:
        router.route(host="fake.test").mock(side_effect=handler)
        yield seen


def run_main(dataset: Path, tmp_path: Path, *extra: str) -> int:
    return main(["run", "--base-url", BASE, "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                 "--cache", str(tmp_path / "c.sqlite"), *extra])  # fmt: skip


def test_max_tokens_zero_refused_falls_back_to_one(dataset: Path, tmp_path: Path) -> None:
    items = load_items(dataset).items[:3]
    server = FakeServer(max_tokens_zero_ok=False, preferred={PAPER.render(it, (0, 1, 2, 3)).text for it in items})
    with serve(server):  # the echo dialect, where max_tokens 0 is tried first
        assert run_main(dataset, tmp_path, "--limit", "3", "--provider", "openai-completions") == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["summary"]["n_top1"] == 3  # the generated token was dropped, not scored
    assert report["provenance"]["endpoint"]["provider"] == "openai-completions"


def test_failed_prompts_are_counted_and_run_goes_on(dataset: Path, tmp_path: Path) -> None:
    items = load_items(dataset).items[:4]
    poison = PAPER.render(items[1], (0, 1, 2, 3)).text

    def hook(body: dict[str, object]) -> httpx.Response | None:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        return httpx.Response(400, json={"error": {"message": "too long"}}) if poison in prompts else None

    with serve(FakeServer(hook=hook)):
        assert run_main(dataset, tmp_path, "--limit", "4") == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["summary"]["n_items"] == 3 and report["summary"]["n_failed"] == 1
    assert report["failures"][0]["id"] == items[1].id and "HTTP 400" in report["failures"][0]["reason"]


def test_auto_detection_prefers_the_vllm_dialect(dataset: Path, tmp_path: Path) -> None:
    with serve(FakeServer()):
        assert run_main(dataset, tmp_path, "--limit", "1") == TOO_FEW
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["provenance"]["endpoint"]["provider"] == "vllm"
    with serve(FakeServer(vllm_dialect=False)):  # a server without prompt_logprobs: echo it is
        assert run_main(dataset, tmp_path / "b", "--limit", "1") == TOO_FEW
    report = json.loads((tmp_path / "b" / "run" / "report.json").read_text())
    assert report["provenance"]["endpoint"]["provider"] == "openai-completions"


def test_probe_prints_capabilities(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(FakeServer()):
        assert main(["probe", "--base-url", BASE, "--cache", str(tmp_path / "c.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "usable" in out and "fake-model" in out


def test_probe_refuses_endpoint_without_echo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def no_echo(body: dict[str, object]) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"index": 0, "text": "x", "logprobs": None}]})

    with serve(FakeServer(hook=no_echo)):
        code = main(["probe", "--base-url", BASE, "--cache", str(tmp_path / "c.sqlite")])
    err = capsys.readouterr().err
    assert code == 4 and "cannot be audited" in err and "no logprobs" in err
    assert len(err.strip().splitlines()) == 1


def test_unreachable_endpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["probe", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "2", "--cache", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 4 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_run_collects_less_often_and_leaves_the_callers_setting(dataset: Path, tmp_path: Path) -> None:
    """The CLI's process collects young objects every YOUNG_THRESHOLD allocations while it audits (auditor/run/
    collector.py); whoever called main() in-process gets their own setting back, after a run and after an error."""
    server = FakeServer()
    seen: list[int] = []
    handler = server.handler

    def watching(request: httpx.Request) -> httpx.Response:
        seen.append(gc.get_threshold()[0])
        return handler(request)

    router = respx.mock(assert_all_called=False)
    router.route(host="fake.test").mock(side_effect=watching)
    before = gc.get_threshold()
    gc.set_threshold(555, *before[1:])
    try:
        args = ["run", "--base-url", BASE, "--model", "fake-model", "--dataset", str(dataset),
                "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
        with router:
            assert main(args) == ExitCode.OK
        assert seen and set(seen) == {YOUNG_THRESHOLD}
        assert gc.get_threshold()[0] == 555
        assert main(["run", "--base-url", BASE, "--dataset", str(tmp_path / "missing")]) == ExitCode.USAGE
        assert gc.get_threshold()[0] == 555
    finally:
        gc.set_threshold(*before)


def test_bad_dataset_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("What?,1,1,2,3,A\n")
    out = tmp_path / "run"
    with serve(FakeServer()) as router:
        code = main(["run", "--base-url", BASE, "--dataset", str(bad), "--out", str(out)])
        assert not router.calls  # refused before any request
    err = capsys.readouterr().err
    assert code == 2 and "bad.csv, row 0" in err and "identical" in err
    assert not out.exists()


def test_missing_api_key_env(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUDITOR_TEST_KEY", raising=False)
    code = main(["probe", "--base-url", BASE, "--api-key-env", "AUDITOR_TEST_KEY"])
    assert code == 2 and "AUDITOR_TEST_KEY" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def test_known_failures_not_paid_twice_until_retry_failed(dataset: Path, tmp_path: Path) -> None:
    items = load_items(dataset).items[:2]
    poison = PAPER.render(items[0], (1, 0, 2, 3)).text
    refusing = [True]

    def hook(body: dict[str, object]) -> httpx.Response | None:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        if refusing[0] and poison in prompts:
            return httpx.Response(400, json={"error": {"message": "refused"}})
        return None

    server = FakeServer(hook=hook)
    with serve(server):
        assert run_main(dataset, tmp_path, "--limit", "2") == TOO_FEW
        sent = server.completion_requests
        assert run_main(dataset, tmp_path, "--limit", "2") == TOO_FEW
        assert server.completion_requests == sent  # the refused prompt is remembered, not re-sent
        report = json.loads((tmp_path / "run" / "report.json").read_text())
        assert report["summary"]["n_failed"] == 1 and "refused" in report["failures"][0]["reason"]
        refusing[0] = False
        assert run_main(dataset, tmp_path, "--limit", "2", "--retry-failed") == TOO_FEW
        assert server.completion_requests == sent + 1  # exactly the one failed prompt
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["summary"]["n_failed"] == 0 and report["summary"]["n_items"] == 2


def test_api_key_sent_but_never_written(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = "sk-SENTINEL-9f8e7d6c5b4a"
    monkeypatch.setenv("AUDITOR_TEST_KEY", sentinel)
    items = load_items(dataset).items[:2]
    poison = PAPER.render(items[1], (0, 1, 2, 3)).text
    seen_auth: list[str] = []
    server = FakeServer()

    def handler(request: httpx.Request) -> httpx.Response:
        seen_auth.append(request.headers.get("authorization", ""))
        if request.url.path.endswith("/completions") and poison in json.loads(request.content)["prompt"]:
            # a server that echoes the credential back in its error message
            return httpx.Response(401, json={"error": {"message": f"bad key {request.headers['authorization']}"}})
        return server.handler(request)

    out, cache = tmp_path / "run", tmp_path / "c.sqlite"  # where run_main writes
    with respx.mock(assert_all_called=False) as router:
        router.route(host="fake.test").mock(side_effect=handler)
        assert run_main(dataset, tmp_path, "--limit", "2", "--api-key-env", "AUDITOR_TEST_KEY") == TOO_FEW
        main(["probe", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "1", "--cache", str(cache),
              "--api-key-env", "AUDITOR_TEST_KEY"])  # fmt: skip
    assert seen_auth and all(a == f"Bearer {sentinel}" for a in seen_auth)
    printed = capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["n_failed"] == 1 and "[REDACTED]" in report["failures"][0]["reason"]
    for blob in [
        printed.out,
        printed.err,
        *(p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()),
    ]:
        assert sentinel not in blob


def test_api_key_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("sk-from-file\n")
    with serve_noting_auth(FakeServer()) as seen:
        assert main(["probe", "--base-url", BASE, "--api-key-file", str(key), "--cache", str(tmp_path / "c")]) == 0
    assert seen and set(seen) == {"Bearer sk-from-file"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_malformed_dataset_ends_in_one_line_exit_2(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    bad = _write_case(data, CASES[name])
    out = tmp_path / "run"
    with serve(FakeServer()) as router:
        code = main(["run", "--base-url", BASE, "--dataset", str(data), "--out", str(out),
                     "--cache", str(tmp_path / "c.sqlite")])  # fmt: skip
        assert not router.calls
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and str(bad) in err and "Traceback" not in err
    if CASES[name].row is not None:
        assert f"row {CASES[name].row}" in err
    assert not out.exists()


def test_other_weights_under_the_same_name_are_not_served_from_cache(dataset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    args = ["run", "--base-url", BASE, "--dataset", str(dataset), "--limit", "2", "--cache", str(cache)]
    first = FakeServer(root="/models/checkpoint-a")
    with serve(first):
        assert main([*args, "--out", str(tmp_path / "a")]) == TOO_FEW
    second = FakeServer(root="/models/checkpoint-b")
    with serve(second):
        assert main([*args, "--out", str(tmp_path / "b")]) == TOO_FEW
    assert second.prompts_scored == 48 + 1  # nothing reused from checkpoint-a; re-probed (+1)


def test_insecure_tls_is_explicit_and_recorded(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    with serve(FakeServer()):
        assert main(["run", "--base-url", BASE, "--dataset", str(dataset), "--limit", "1", "--out", str(out),
                     "--cache", str(tmp_path / "c.sqlite"), "--insecure"]) == TOO_FEW  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["provenance"]["endpoint"]["insecure_tls"] is True
    assert "TLS verification was OFF" in (out / "report.md").read_text()
    with serve(FakeServer()):
        assert main(["run", "--base-url", BASE, "--dataset", str(dataset), "--limit", "1", "--out", str(out),
                     "--cache", str(tmp_path / "c.sqlite")]) == TOO_FEW  # fmt: skip
    assert json.loads((out / "report.json").read_text())["provenance"]["endpoint"]["insecure_tls"] is False


def test_hosted_key_variables_are_read_only_for_their_own_host(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auditor.endpoint.config import EndpointConfig, http_client

    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("TOGETHER_API_KEY", "tg-secret")
    monkeypatch.setenv("FIREWORKS_API_KEY", "fw-secret")

    def auth(base_url: str, provider: str = "auto") -> str | None:
        return http_client(EndpointConfig(base_url=base_url, provider=provider)).headers.get("authorization")

    assert auth("https://api.openai.com/v1") == "Bearer sk-openai-secret"
    assert auth("https://api.openai.com/v1", "openai") == "Bearer sk-openai-secret"
    assert auth("https://api.together.xyz/v1") == "Bearer tg-secret"
    assert auth("https://api.fireworks.ai/inference/v1", "fireworks") == "Bearer fw-secret"
    assert auth("http://127.0.0.1:8000/v1") is None  # a local server never gets a hosted key
    assert auth("https://my-proxy.example/v1", "openai") is None  # nor a proxy, unless named
    assert auth("https://api.openai.com/v1", "together") is None  # nor another provider's host

    with serve_noting_auth(FakeServer()) as seen:
        assert run_main(dataset, tmp_path, "--limit", "1") == TOO_FEW
    assert seen and not any(seen)

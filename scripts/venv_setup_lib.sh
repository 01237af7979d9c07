# Sourced by scripts/setup_server_env.sh and scripts/setup_llama_env.sh: what both do around their
# own package lists.
#
#   venv_begin LABEL VENV BASE_PYTHON SCRIPT_PATH
#       Exits 0 at once when VENV's marker records the sha256 of SCRIPT_PATH and of this file (nothing
#       changed since the last complete setup); otherwise removes the marker, creates VENV with
#       BASE_PYTHON if needed, and sets `venv`, `pip` (array), `marker`, `setup_hash`, `setup_start`.
#   installed DIST==VERSION|DIST ...
#       Succeeds when all of them are present in the venv (at that version).
#   venv_done LABEL
#       Writes the marker (only reached when every step succeeded) and says how long it took.

venv_begin() {
    local label=$1 script_path=$4
    venv=$2
    marker="$venv/.auditor-setup-done"
    setup_hash="$(cat "$script_path" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$marker" && "$(cat "$marker")" == "$setup_hash" && -x "$venv/bin/python" ]]; then
        echo "$label venv up to date: $venv"
        exit 0
    fi
    setup_start=$SECONDS
    rm -f "$marker"
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "creating venv: $venv"
        "$3" -m venv "$venv"
    fi
    pip=("$venv/bin/python" -m pip)
}

installed() {
    "$venv/bin/python" - "$@" <<'PY'
import sys
from importlib import metadata

for spec in sys.argv[1:]:
    name, _, version = spec.partition("==")
    try:
        found = metadata.version(name)
    except metadata.PackageNotFoundError:
        sys.exit(1)
    if version and found != version:
        sys.exit(1)
PY
}

venv_done() {
    echo "$setup_hash" >"$marker"
    echo "$1 venv ready in $((SECONDS - setup_start)) s: $venv"
}

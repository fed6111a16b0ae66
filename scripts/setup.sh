#!/usr/bin/env bash
# Create .venv (or $EDGEBENCH_VENV) and install edgebench with its development tools. Safe to re-run.
# The install builds the JupyterLab extension (labextension/, npm from the npm registry) on first use and
# enables it and the server extension in the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${EDGEBENCH_VENV:-.venv}
python=${PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 11), "edgebench needs Python >= 3.11"'
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip_install() {  # quiet on success, the whole log on failure
    local log
    log=$(mktemp)
    if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" >"$log" 2>&1; then
        grep -v '^WARNING: Location' "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}
echo "setup: installing edgebench and its development tools into $venv (the JupyterLab extension builds with npm on the first run)" >&2
pip_install --upgrade pip
pip_install -e ".[dev]"
echo "setup: done" >&2
"$venv/bin/python" -c 'import edgebench' # fails loudly if the install did not work
"$venv/bin/jupyter" labextension list 2>&1 | grep -q "edgebench.*enabled" \
    || { echo "setup.sh: the JupyterLab extension is not installed" >&2; exit 1; }

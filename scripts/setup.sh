#!/usr/bin/env bash
# Create .venv (or $EDGEBENCH_VENV) and install edgebench with its development tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${EDGEBENCH_VENV:-.venv}
python=${PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 11), "edgebench needs Python >= 3.11"'
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
"$venv/bin/python" -c 'import edgebench' # fails loudly if the install did not work

#!/usr/bin/env bash
# The test command: set up, lint, type-check the pure core, run every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/${EDGEBENCH_VENV:-.venv}/bin:$PATH"
ruff check edgebench tests
mypy edgebench/core
pytest "$@"

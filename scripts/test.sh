#!/usr/bin/env bash
# The test command: set up, lint, type-check the pure core, test the front end (jest), start the services the
# tests need (a Docker Engine, the offline base images, registries, Chromium), run every test, stop what was
# started. Extra arguments go to pytest; UI screenshots land in artifacts/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/${EDGEBENCH_VENV:-.venv}/bin:$PATH"
ruff check edgebench tests
mypy edgebench/core
# the front end: setup.sh built it (tsc type-checks it); jest tests its request helper and model
(cd labextension && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm test --silent)

trap 'scripts/services.sh stop' EXIT
if scripts/services.sh start; then
    # shellcheck disable=SC1091
    . .run/env
    export DOCKER_HOST
    export EDGEBENCH_BASE_IMAGE=${EDGEBENCH_BASE_IMAGE:-"edgebench/base:bookworm-py311-{arch}"}
elif [ "${CI:-}" = true ]; then
    echo "test.sh: the services did not start, and CI never skips the tests that need them" >&2
    exit 1
else
    echo "test.sh: continuing without Docker: the tests that need it will skip and say why" >&2
fi
export ORT_DISABLE_TELEMETRY=1
pytest "$@"

#!/usr/bin/env bash
# The main job: set up edgebench, start a Docker Engine when possible (see services.sh), and run the demo flow
# on the embedded defaults: train, export with parity, bench per device, build, test, archive the image.
# Extra arguments go to `edgebench demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
say() { echo "demo.sh [$(( $(date +%s) - started )) s] $*" >&2; }
say "1/3 setting up .venv (pip and npm; the first run takes a few minutes)"
scripts/setup.sh
trap 'scripts/services.sh stop' EXIT
say "2/3 starting the Docker Engine and building the offline base images (the first run takes several minutes)"
if scripts/services.sh start; then
    # shellcheck disable=SC1091
    . .run/env
    export DOCKER_HOST
    export EDGEBENCH_BASE_IMAGE=${EDGEBENCH_BASE_IMAGE:-"edgebench/base:bookworm-py311-{arch}"}
else
    echo "demo.sh: no Docker Engine: the demo will train, export and bench, and say what it skipped" >&2
fi
export ORT_DISABLE_TELEMETRY=1
say "3/3 running edgebench demo"
"${EDGEBENCH_VENV:-.venv}/bin/edgebench" demo "$@"

#!/usr/bin/env bash
# The main job: set up edgebench, then run the demo flow on the embedded defaults. Extra arguments go to it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec "${EDGEBENCH_VENV:-.venv}/bin/edgebench" demo "$@"

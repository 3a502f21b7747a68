#!/usr/bin/env bash
# Set up (if needed) and start the console on the embedded default: the conveyor simulation.
# Extra arguments go to app.py (see `.venv/bin/python app.py --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python app.py "$@"

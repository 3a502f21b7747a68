#!/usr/bin/env bash
# Set up (if needed, with the test browser) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
export MUJOCO_GL=egl
export OPENPI_CLIENT_PYTHON="$PWD/.venv-openpi/bin/python"  # tests/model/test_serve.py drives the server with it
status=0
.venv/bin/python -m pytest "$@" || status=$?
# pytest exits 5 when it collected no tests: that is not a failure of the code under test.
if [[ $status -eq 5 ]]; then echo "no tests collected"; exit 0; fi
exit $status

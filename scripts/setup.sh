#!/usr/bin/env bash
# Installs everything Foresight Console needs on a fresh Debian machine, idempotently:
# system packages (sim renderer, video codecs, and with --browser the test browser), a Python 3.12
# virtualenv in .venv, and the pinned requirements. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_BROWSER=0  # --browser: also what the tests need (chromium, and openpi-client in .venv-openpi)
[[ "${1:-}" == "--browser" ]] && WITH_BROWSER=1

# EGL/OSMesa for MuJoCo offscreen rendering, ffmpeg for video encoding.
SYSTEM_PACKAGES=(libegl1 libgl1 libgl1-mesa-dri libosmesa6 libglib2.0-0 ffmpeg)
(( WITH_BROWSER )) && SYSTEM_PACKAGES+=(chromium fonts-dejavu-core)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

find_python312() {
  local candidates=(python3.12)
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  command -v pyenv >/dev/null 2>&1 && pyenv_root="$(pyenv root)"
  for dir in "$pyenv_root"/versions/3.12*; do candidates+=("$dir/bin/python3.12"); done
  for py in "${candidates[@]}"; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      command -v "$py"; return 0
    fi
  done
  return 1
}

if [[ ! -x .venv/bin/python ]]; then
  PYTHON=$(find_python312) || {
    echo "setup: Python 3.12 is required (LeRobot 0.6.1 needs >= 3.12) and none was found." >&2
    echo "       Install it (e.g. 'pyenv install 3.12') or put python3.12 on PATH, then run again." >&2
    exit 1
  }
  echo "setup: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi

# Reinstall only when requirements.txt changed since the last successful install.
STAMP=.venv/.requirements.sha256
WANT=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ ! -f $STAMP || $(cat "$STAMP") != "$WANT" ]]; then
  echo "setup: installing Python packages (first time: several GB, mostly torch)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$WANT" > "$STAMP"
fi

# The tests drive the policy server with the public openpi-client, which pins numpy < 2: own venv.
if (( WITH_BROWSER )); then
  OPENPI_STAMP=.venv-openpi/.requirements.sha256
  OPENPI_WANT=$(sha256sum requirements-openpi-client.txt | cut -d' ' -f1)
  if [[ ! -f $OPENPI_STAMP || $(cat "$OPENPI_STAMP") != "$OPENPI_WANT" ]]; then
    echo "setup: installing openpi-client into .venv-openpi (for the policy-server tests)"
    [[ -x .venv-openpi/bin/python ]] || "$(.venv/bin/python -c 'import sys; print(sys._base_executable)')" -m venv .venv-openpi
    .venv-openpi/bin/python -m pip install -q -r requirements-openpi-client.txt
    echo "$OPENPI_WANT" > "$OPENPI_STAMP"
  fi
fi

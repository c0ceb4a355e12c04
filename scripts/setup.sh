#!/usr/bin/env bash
# Sets up robolearn on a fresh Debian/Ubuntu machine: the GL and USB system libraries (when run as
# root or with sudo), a virtualenv in .venv, the CPU build of PyTorch, and robolearn itself.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    plus the test and lint tools
# On a CUDA machine, install the torch build you want into .venv first; setup keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 libusb-1.0-0 ffmpeg)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = "none" ]; then
    echo "setup: missing system packages: ${missing[*]}; install them with apt-get as root" >&2
    exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # The CPU wheel; a plain `pip install torch` pulls several GB of CUDA packages.
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
else
  .venv/bin/python -m pip install -q -e .
fi
echo "setup: done; activate with: source .venv/bin/activate"

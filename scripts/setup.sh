#!/usr/bin/env bash
# Set up wganlab on a fresh machine: a virtual environment in .venv, torch (the CPU wheel 2.13.0 when
# torch is missing), wganlab itself, and, when run as root with apt, Fashion-MNIST from Debian.
#   bash scripts/setup.sh          # runtime (with plots)
#   bash scripts/setup.sh --dev    # plus the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras="[plots]"
[[ "${1:-}" == "--dev" ]] && extras="[plots,dev]"

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
py=.venv/bin/python
$py -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
if ! $py -c "import torch" 2>/dev/null; then
  $py -m pip install -q --disable-pip-version-check "torch==2.13.0"
fi
$py -m pip install -q --disable-pip-version-check -e ".${extras}"

# Fashion-MNIST (real data, 70,000 images) from Debian's dataset-fashion-mnist, when we may install it.
if [[ ! -d /usr/share/datasets/fashion-mnist ]] && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } \
    || echo "setup: could not install dataset-fashion-mnist; Fashion-MNIST experiments will fall back (see README)" >&2
fi

#!/usr/bin/env bash
# Set up wganlab on a fresh machine: a virtual environment in .venv, torch (the CPU wheel 2.13.0 when
# torch is missing), wganlab itself, and, when run as root with apt, Fashion-MNIST from Debian.
#   bash scripts/setup.sh          # runtime (matplotlib, for the report's plots, is a core dependency)
#   bash scripts/setup.sh --dev    # plus the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[[ "${1:-}" == "--dev" ]] && extras="[dev]"

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
py=.venv/bin/python
$py -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
if ! $py -c "import torch" 2>/dev/null; then
  $py -m pip install -q --disable-pip-version-check "torch==2.13.0"
fi
$py -m pip install -q --disable-pip-version-check -e ".${extras}"

# Debian packages, when we may install them: Fashion-MNIST (real data, 70,000 images) always, and a
# headless Chromium for the report's browser test with --dev.
apt_install() {  # apt_install PACKAGE CHECK-PATH WHAT-IF-MISSING
  [[ -e $2 ]] && return 0
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$1" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$1" >/dev/null 2>&1; } && return 0
  fi
  echo "setup: could not install $1; $3" >&2
}
apt_install dataset-fashion-mnist /usr/share/datasets/fashion-mnist \
  "Fashion-MNIST experiments fall back to scikit-learn's digits (see README)"
if [[ -n $extras && $extras == *dev* ]]; then
  apt_install chromium /usr/bin/chromium "the report's browser test will be skipped"
fi

#!/usr/bin/env bash
# Set up l2o_gym on a fresh machine: the CPU build of torch first where no torch is present
# (a bare `torch` requirement would pull a multi-GB CUDA build), then the project with its test extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  "$PYTHON" -m pip install --quiet torch==2.13.0
fi
"$PYTHON" -m pip install --quiet -e ".[test]"

#!/usr/bin/env bash
# Set up l2o_gym on a fresh machine: torch first where no torch is present, then the project with
# its test extra. A torch already installed is kept, so choose the build BEFORE running this:
#   CPU only (small, any machine):
#     python3 -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
#   CUDA (an NVIDIA GPU): the index of the CUDA version your driver supports, as listed on
#   pytorch.org ("Get started"), e.g.
#     python3 -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu<version>
#   then check: python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"
# Without a torch installed, the line below installs PyPI's default build of torch for this
# platform (on Linux x86-64 that build bundles CUDA libraries, a download of several GB).
# PYTHON=/path/to/python picks the interpreter (e.g. a virtual environment's).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  "$PYTHON" -m pip install --quiet torch==2.13.0
fi
"$PYTHON" -m pip install --quiet -e ".[test]"

#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TORCH_HOME="${TORCH_HOME:-$(cd .. && pwd)/shared/torch}"
.venv/bin/python -m pytest -q "$@"

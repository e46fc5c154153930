#!/usr/bin/env bash
# The command of both device calls (docs/device.md), run on the GPU box in the tree's root:
#
#   set -o pipefail; bash scripts/device/run.sh 2>&1 | tee $OUT/log
#
# It checks the kit part this call carried (.device-kit/call1 or call2, sha256) and stashes it in
# $CATDOG_STASH (default ~/catdog-stash), which outlives the call while the box stays warm. Once
# call 2's part is there it runs every run of the kit's profile (python -m catdog.device_run) and
# writes the returned files to $OUT; call 1's part, stashed by the call before, adds the largest
# pool and the exact ImageNet weights. DEADLINE_S (default 540) leaves the 600 s command time to
# pack and return.
set -euo pipefail
cd "$(dirname "$0")/../.."
stash="${CATDOG_STASH:-$HOME/catdog-stash}"
py="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
mkdir -p "$stash" "${OUT:?OUT names the folder of the returned files}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$py" -m catdog.device_run stash .device-kit "$stash"
if [ ! -f "$stash/call2/manifest.json" ]; then
  echo "run.sh: call 2's part is not stashed yet: make call 2 now (docs/device.md)"
  exit 0
fi
if ! "$py" -c "import lightly" 2>/dev/null; then  # catdog.simclr imports it; the box lacks it
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$stash/site" \
    "$stash"/call2/wheels/*.whl
  export PYTHONPATH="$stash/site:$PYTHONPATH"
fi
"$py" -m catdog.device_run run "$stash" --out "$OUT" --deadline "${DEADLINE_S:-540}" "$@"

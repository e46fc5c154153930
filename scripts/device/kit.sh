#!/usr/bin/env bash
# The CPU side before a device run (docs/device.md): the prep, then the kit of the two calls.
#
#   bash scripts/device/kit.sh [profile]      (default: h200)
#
# 1. The prep: the data and teacher stages as one DVC experiment in the workspace, every param set
#    to the profile's run over the committed params.yaml (python -m catdog.device_kit --prep-args):
#    the split, the teacher's fit, its logits of the labeled images and the largest pool, its
#    labels of the held-out images, its test score, and the representation floor and ceiling.
#    DVC's run cache makes it quick where an earlier run had the same params (the cpu profile's
#    teacher and logits; the h200 profile's 500 held-out images are its own).
# 2. The kit: python -m catdog.device_kit writes .device-kit/call1 and .device-kit/call2 (the
#    lightly wheel is downloaded once into .device-kit/wheels) and refuses a call over 64 MiB.
set -euo pipefail
source "$(dirname "$0")/../env.sh"  # install; PATH, PYTHONPATH, TORCH_HOME, $source
profile="${1:-h200}"
mapfile -t params < <(python -m catdog.device_kit --profile "$profile" --prep-args)
dvc exp run -S "data.source=$source" "${params[@]}" \
  teacher_logits heldout teacher_score representation_bounds
python -m catdog.device_kit --profile "$profile"

#!/usr/bin/env bash
# Fine-tuning sweep read on val only (never test): the SimCLR backbone's learning rate as a
# fraction of the new head's (finetune.backbone_lr). One DVC experiment per value, each training
# finetune@simclr alone (no evaluate stage, so test is never scored), then
# results/tuning/finetune/simclr.{csv,png} (val accuracy against the fraction; catdog.tuning).
# (The ImageNet start took the same param until its sweep, results/tuning/finetune/imagenet.png,
# showed it best at the head's rate; it now always trains at lr.)
#
#   bash scripts/tune-finetune.sh                     # the cpu profile at the 10k pool
#   SIZE=3000 BACKBONE_LRS="0.1 1.0" bash scripts/tune-finetune.sh [more -S args]
#
# The experiments run one after another in this workspace, not from a DVC queue: a stage with a
# persistent output (pretrain's epoch checkpoint) never comes from DVC's run cache, so every
# queued experiment would pretrain SimCLR again (about 12 min at 10k on a 2-core CPU). Here the
# first one pretrains (unless the workspace already holds that pretrain) and every later one
# costs one fine-tune, about 1 min. Results: `dvc exp show`.
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, TORCH_HOME, $source
size="${SIZE:-10000}"
# The cpu profile's overrides for this size, without its scoring targets.
mapfile -t profile < <(python -m catdog.profiles args cpu "$size" --overrides-only)
for lr in ${BACKBONE_LRS:-0.01 0.1 0.3 1.0}; do
  dvc exp run -S "data.source=$source" "${profile[@]}" -S "finetune.backbone_lr=$lr" "$@" \
    finetune@simclr
done
python -m catdog.tuning simclr --x finetune.backbone_lr \
  --out results/tuning/finetune --where "data.size=$size" --where "train.seed=${SEED:-0}"  # this sweep's points

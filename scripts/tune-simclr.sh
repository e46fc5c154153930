#!/usr/bin/env bash
# SimCLR's recipe and compute curve at one pool size, read on val and teacher agreement only
# (never test): one DVC queue experiment per point, each running pretrain and finetune@simclr
# (no evaluate stage, so test is never scored), then results/tuning/simclr/ (catdog.simclr_sweep):
# every point's representation score (linear probe val / teacher agreement, kNN) and fine-tuned
# val beside the random-init floor and the ImageNet ceiling, the compute curve (score against
# pretraining epochs) and the recipe points (one knob changed from the profile's recipe each).
#
#   bash scripts/tune-simclr.sh     # the cpu profile at the 3k pool: ~4 h on 2 cores (~25 s/epoch)
#   SIZE=10000 POINTS="pretrain.epochs=15" bash scripts/tune-simclr.sh
#
# POINTS lists one experiment per word, each a comma-joined set of overrides (default below: the
# compute curve at 0.5x-4x of the profile's 3k budget of 30 epochs, then one knob at a time; the
# 96 px and the stride-1 student at about the minutes of 30 epochs at 64 px).
# The data stages come from the run cache when an earlier run made them. Results: `dvc exp show`.
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, PYTHONPATH, TORCH_HOME, $source, run_queue
size="${SIZE:-3000}"
points="${POINTS:-pretrain.epochs=30 pretrain.epochs=15 pretrain.epochs=60 pretrain.epochs=120
  pretrain.temperature=0.5 pretrain.temperature=0.1 pretrain.image_size=96,pretrain.epochs=13
  student.stem_stride=1,pretrain.epochs=8 pretrain.weight_decay=0.0005}"
# The cpu profile's overrides for this size, without its scoring targets.
mapfile -t profile < <(python -m catdog.profiles args cpu "$size" --overrides-only)
# the floor and the ceiling at the same data params, drawn beside every point (and for the
# low-resolution student, its own)
dvc exp run --queue -S "data.source=$source" "${profile[@]}" "$@" representation_bounds
dvc exp run --queue -S "data.source=$source" "${profile[@]}" -S student.stem_stride=1 "$@" \
  representation_bounds
# the same fine-tune from random init: the line SimCLR has to clear
dvc exp run --queue -S "data.source=$source" "${profile[@]}" "$@" finetune@scratch
for point in $points; do
  IFS=, read -ra pairs <<<"$point"
  args=()  # the profile's overrides, but the point's value for any key the point sets
  for ((i = 1; i < ${#profile[@]}; i += 2)); do
    [[ ",$point" == *",${profile[i]%%=*}="* ]] || args+=(-S "${profile[i]}")
  done
  for pair in "${pairs[@]}"; do args+=(-S "$pair"); done
  dvc exp run --queue -S "data.source=$source" "${args[@]}" "$@" finetune@simclr
done
run_queue  # one at a time, to the end (scripts/env.sh)
# This checkout's experiments, with the files they recorded, saved beside the earlier records (a
# new checkout has none of their refs); the sweep reads all of them.
out="${OUT:-results/tuning/simclr}"
mkdir -p "$out"
python -m catdog.experiments | gzip -9 >"$out/exp_show-$(git rev-parse --short HEAD).json.gz"
saved=()
for record in "$out"/exp_show*.json.gz; do saved+=(--show-json "$record"); done
python -m catdog.simclr_sweep --out "$out" "${saved[@]}" --where "data.size=$size"

#!/usr/bin/env bash
# KD temperature x alpha sweep, read on val only (never test): one DVC queue experiment per grid
# point, each training distill@kd alone (no evaluate stage, so test is never scored), then
# results/tuning/kd.csv and kd.png (val accuracy against T, one line per alpha; catdog.tuning).
#
#   bash scripts/tune-kd.sh                          # the cpu profile at the 3k pool, 20 epochs
#   SIZE=10000 EPOCHS=35 TEMPERATURES=2,4 ALPHAS=0.9 bash scripts/tune-kd.sh [more -S args]
#   TEMPERATURES=8,16,32 ALPHAS=1.0 OUT=results/tuning/kd-high-t bash scripts/tune-kd.sh
#   TEACHER=mobilenet_v2 METRIC=heldout_agree TEMPERATURES=1,2,4,8 ALPHAS=1.0 \
#     OUT=results/tuning/kd-mobilenet-teacher bash scripts/tune-kd.sh
#
# TEACHER (teacher.arch; default: the profile's) keeps the sweep to that teacher's points;
# METRIC=heldout_agree reads it on agreement with the teacher on the 2,000 held-out pool images
# instead of the 180 val images (catdog.tuning's --metric; both land in the csv).
#
# The teacher and its logits come from the run cache when an earlier run made them (scripts/
# cpu-run.sh); every grid point then costs one KD training. Results: `dvc exp show`.
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, PYTHONPATH, TORCH_HOME, $source, run_queue
size="${SIZE:-3000}"
epochs="${EPOCHS:-20}"
# The cpu profile's overrides for this size, without its scoring targets.
mapfile -t profile < <(python -m catdog.profiles args cpu "$size" --overrides-only)
dvc exp run --queue -S "data.source=$source" "${profile[@]}" \
  -S "distill.epochs=$epochs" -S "distill.patience=$epochs" \
  -S "distill.temperature=${TEMPERATURES:-1,2,4,8}" -S "distill.alpha=${ALPHAS:-0.5,0.9,1.0}" \
  ${TEACHER:+-S "teacher.arch=$TEACHER"} "$@" distill@kd
run_queue  # one at a time, to the end (scripts/env.sh)
# --where: this sweep's points only
python -m catdog.tuning kd --x distill.temperature --series distill.alpha --out "${OUT:-results/tuning}" \
  --where "data.size=$size" --where "distill.epochs=$epochs" \
  ${TEACHER:+--where "teacher.arch=$TEACHER"} --metric "${METRIC:-val_accuracy}"

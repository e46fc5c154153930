#!/usr/bin/env bash
# KD's patience and consistency (issue 22): distill@kd at one pool size over schedule lengths
# (0.5x-4x of the cpu profile's steps: 60 / 120 / 240 / 480 epochs at the 3k pool), with the
# teacher's targets of whole images (cached) and of stored crops (crops: the teacher_crops stage,
# K crops per image, paid once), read on agreement with the teacher on the heldout stage's
# unlabeled images (never test): results/tuning/kd-schedule/kd.{csv,png}, one line per mode.
#
#   bash scripts/kd-schedule.sh          # the 3k pool: 8 runs, ~3 h on 2 cores (2 to 4x the profile's KD)
#   EPOCHS=120 MODES=crops CROPS=8 bash scripts/kd-schedule.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, PYTHONPATH, TORCH_HOME, $source, run_queue
size="${SIZE:-3000}"
mapfile -t profile < <(python -m catdog.profiles args cpu "$size" --overrides-only)
for mode in ${MODES:-cached crops}; do
  for epochs in ${EPOCHS:-60 120 240 480}; do
    dvc exp run --queue -S "data.source=$source" "${profile[@]}" -S "distill.epochs=$epochs" \
      -S "distill.patience=$epochs" -S "distill.teacher_mode=$mode" \
      -S "teacher_crops.crops=$([ "$mode" = crops ] && echo "${CROPS:-4}" || echo 0)" "$@" distill@kd
  done
done
run_queue  # one at a time, to the end (scripts/env.sh)
python -m catdog.tuning kd --x distill.epochs --series distill.teacher_mode --metric heldout_agree \
  --where "data.size=$size" --out "${OUT:-results/tuning/kd-schedule}"

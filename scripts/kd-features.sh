#!/usr/bin/env bash
# Richer distillation (the reference study's future work): logits-only KD, attention transfer
# (Zagoruyko & Komodakis; beta/2 = 500 as the paper, at MobileNetV2 blocks 6/13/18, strides
# 8/16/32) and FitNets, each into MobileNetV2 from random init at one pool size, two seeds. Logits
# and AT train on the teacher_crops stage's stored crops (K per image, with the teacher's logits
# and attention maps of each: no teacher runs while training); FitNets needs the teacher's full
# feature maps, so it asks the teacher online (a teacher forward per step: slow on a CPU, left out
# unless MODES names it). Then the report over them, one row per recipe (results/kd-features/).
#
#   bash scripts/kd-features.sh                    # the 3k pool: 4 runs, ~15 min each on 2 cores
#   MODES="logits attention fitnets" SEEDS=0 bash scripts/kd-features.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, PYTHONPATH, TORCH_HOME, $source, run_queue
size="${SIZE:-3000}"
crops="${CROPS:-4}"
mapfile -t profile < <(python -m catdog.profiles args cpu "$size" --overrides-only)
stored=(-S distill.teacher_mode=crops -S "teacher_crops.crops=$crops" -S teacher_crops.attention=true)
for seed in ${SEEDS:-0 1}; do
  for mode in ${MODES:-logits attention}; do
    case "$mode" in
      logits) recipe=("${stored[@]}") ;;
      attention) recipe=("${stored[@]}" -S distill.attention_weight=500) ;;
      fitnets) recipe=(-S distill.teacher_mode=online -S distill.feature_weight=1) ;;
      *) echo "unknown mode $mode (logits, attention, fitnets)" >&2; exit 2 ;;
    esac
    dvc exp run --queue -S "data.source=$source" "${profile[@]}" "${recipe[@]}" \
      -S "train.seed=$seed" "$@" evaluate@kd
  done
done
run_queue  # one at a time, to the end (scripts/env.sh)
python -m catdog.report --out "${OUT:-results/kd-features}"

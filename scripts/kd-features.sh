#!/usr/bin/env bash
# Richer distillation (the reference study's future work): logits-only KD, attention transfer
# (Zagoruyko & Komodakis; beta/2 = 500 as the paper, at MobileNetV2 blocks 6/13/18, strides
# 8/16/32) and FitNets, each into MobileNetV2 from random init at one pool size, two seeds.
# Modes (MODES):
#   logits            the profile's KD: whole-image teacher logits (cached)
#   attention         the same plus attention transfer on the teacher's maps of each whole image
#                     (teacher_crops.attention, stored once), cut to the student's crop
#   crops-logits      KD on the teacher_crops stage's K stored crops (CROPS per image)
#   crops-attention   the same plus attention transfer on the maps stored with each crop
#   fitnets           the same plus the FitNets hint on the teacher's last feature map of each
#                     whole image (teacher_crops.features, stored once), cut to the student's crop
#   online-fitnets    the FitNets hint on the teacher's map of the very crop: asks the teacher
#                     online (a teacher forward per step: slow on a CPU)
# No teacher runs while training but in online-fitnets. Each finished run is snapshotted into
# $RUNS_DIR/<size>-<mode>-s<seed>/, then the report over them, one row per recipe ($OUT,
# results/kd-features/).
#
#   bash scripts/kd-features.sh                    # the 3k pool: 6 runs, ~30 min each on 2 cores
#   MODES="crops-logits crops-attention" SEEDS=0 bash scripts/kd-features.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, PYTHONPATH, TORCH_HOME, $source, run_queue
size="${SIZE:-3000}"
crops="${CROPS:-4}"
# KD epochs of every recipe, at any SIZE: 120 made the table at 3k (the profile's own KD takes
# 240 there, 80 at 10k); set EPOCHS to follow another size's schedule
epochs="${EPOCHS:-120}"
out="${OUT:-results/kd-features}"
runs="${RUNS_DIR:-$out/runs}"
names=()
mapfile -t profile < <(python -m catdog.profiles args cpu "$size" --overrides-only)
stored=(-S distill.teacher_mode=crops -S "teacher_crops.crops=$crops" -S teacher_crops.attention=true)
whole=(-S distill.teacher_mode=cached -S teacher_crops.crops=0)
for seed in ${SEEDS:-0 1}; do
  for mode in ${MODES:-logits attention fitnets}; do
    case "$mode" in
      logits) recipe=("${whole[@]}" -S teacher_crops.attention=false) ;;
      attention) recipe=("${whole[@]}" -S teacher_crops.attention=true -S distill.attention_weight=500) ;;
      crops-logits) recipe=("${stored[@]}") ;;
      crops-attention) recipe=("${stored[@]}" -S distill.attention_weight=500) ;;
      fitnets) recipe=("${whole[@]}" -S teacher_crops.features=true -S distill.feature_weight=1) ;;
      online-fitnets) recipe=(-S distill.teacher_mode=online -S distill.feature_weight=1) ;;
      *) echo "unknown mode $mode (logits, attention, crops-logits, crops-attention, fitnets," \
              "online-fitnets)" >&2
         exit 2 ;;
    esac
    name="kdf-$size-$mode-s$seed-$(date +%H%M%S)"
    dvc exp run --queue -n "$name" -S "data.source=$source" "${profile[@]}" "${recipe[@]}" \
      -S "train.seed=$seed" -S "distill.epochs=$epochs" -S "distill.patience=$epochs" "$@" evaluate@kd
    names+=("$name:$size-$mode-s$seed")
  done
done
run_queue  # one at a time, to the end (scripts/env.sh)
for entry in "${names[@]}"; do
  python -m catdog.profiles snapshot cpu "$runs/${entry#*:}" --rev "${entry%%:*}" --methods kd
done
python -m catdog.report --runs-dir "$runs" --out "$out"

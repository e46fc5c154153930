#!/usr/bin/env bash
# Teacher-student pairs (the reference study's future work): KD into MobileNetV2 from random init
# at one pool size, from each offline ImageNet teacher (EfficientNet-Lite2, the default;
# EfficientNet-Lite0; MobileNetV2, the student's own architecture), two seeds. One DVC queue
# experiment per teacher and seed, each fitting its teacher's head, its logits of the pool and
# the test score, then distill@kd and evaluate@kd; then the report over them, one row per teacher
# (catdog.report tags the KD rows with teacher.arch): teacher and student accuracy, and the
# teacher's cost from its logits stage's seconds (labeled + data.max_size pool images).
#
#   bash scripts/teacher-pairs.sh         # the cpu profile at the 3k pool: ~35 min per run on 2 cores
#   SIZE=6000 SEEDS="0" ARCHS="efficientnet_lite0" bash scripts/teacher-pairs.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, PYTHONPATH, TORCH_HOME, $source, run_queue
size="${SIZE:-3000}"
mapfile -t profile < <(python -m catdog.profiles args cpu "$size" --overrides-only)
for seed in ${SEEDS:-0 1}; do
  for arch in ${ARCHS:-efficientnet_lite2 efficientnet_lite0 mobilenet_v2}; do
    dvc exp run --queue -S "data.source=$source" "${profile[@]}" -S "teacher.arch=$arch" \
      -S "train.seed=$seed" "$@" teacher_score evaluate@kd
  done
done
run_queue  # one at a time, to the end (scripts/env.sh)
python -m catdog.report --out "${OUT:-results/pairs}"

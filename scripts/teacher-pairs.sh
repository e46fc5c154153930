#!/usr/bin/env bash
# Teacher-student pairs (the reference study's future work): KD into MobileNetV2 from random init
# at one pool size, from each offline ImageNet teacher (EfficientNet-Lite2, the default;
# EfficientNet-Lite0; MobileNetV2, the student's own architecture), two seeds. One DVC queue
# experiment per teacher and seed, each fitting its teacher's head, its logits of the pool and
# its test score (accuracy, ECE, corruptions), then distill@kd and evaluate@kd. Each finished
# experiment is snapshotted into $RUNS_DIR/<size>-<arch>-s<seed>/ (catdog.profiles snapshot --rev),
# then benchmarks/bench_teachers.py times each teacher on the idle machine, catdog.teacher_pairs
# writes the table (pairs.md, pairs.csv, pairs.png) and catdog.report
# the full report (its "Teacher-student pairs" section) into $OUT.
#
#   bash scripts/teacher-pairs.sh         # the cpu profile at the 3k pool: ~25 min per run on 2 cores
#   SIZE=6000 SEEDS="0" ARCHS="efficientnet_lite0" bash scripts/teacher-pairs.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, PYTHONPATH, TORCH_HOME, $source, run_queue
size="${SIZE:-3000}"
# KD epochs of every pair, at any SIZE: 120 made the table at 3k (the profile's own KD takes
# 240 there, 80 at 10k); set EPOCHS to follow another size's schedule
epochs="${EPOCHS:-120}"
out="${OUT:-results/pairs}"
runs="${RUNS_DIR:-$out/runs}"
mapfile -t profile < <(python -m catdog.profiles args cpu "$size" --overrides-only)
names=()
for seed in ${SEEDS:-0 1}; do
  for arch in ${ARCHS:-efficientnet_lite2 efficientnet_lite0 mobilenet_v2}; do
    name="pair-$size-$arch-s$seed-$(date +%H%M%S)"
    dvc exp run --queue -n "$name" -S "data.source=$source" "${profile[@]}" -S "teacher.arch=$arch" \
      -S "train.seed=$seed" \
      -S "distill.epochs=$epochs" -S "distill.patience=$epochs" "$@" teacher_score evaluate@kd
    names+=("$name:$size-$arch-s$seed")
  done
done
run_queue  # one at a time, to the end (scripts/env.sh)
for entry in "${names[@]}"; do
  python -m catdog.profiles snapshot cpu "$runs/${entry#*:}" --rev "${entry%%:*}" --methods kd teacher
done
# each teacher's speed on the machine, idle now that the queue is done (the stages' own seconds
# shared the cores with whatever else ran)
python benchmarks/bench_teachers.py --archs ${ARCHS:-efficientnet_lite2 efficientnet_lite0 mobilenet_v2} \
  --steps 10 --json "$out/teacher_speeds.json"
python -m catdog.teacher_pairs --runs-dir "$runs" --out "$out" --speeds "$out/teacher_speeds.json"
python -m catdog.report --runs-dir "$runs" --out "$out"

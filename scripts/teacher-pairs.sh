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
#   SEEDS=1 SCORE_TEACHER=0 BENCH=0 bash scripts/teacher-pairs.sh   # add seed 1 to today's table
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, PYTHONPATH, TORCH_HOME, $source, run_queue
size="${SIZE:-3000}"
# KD epochs of every pair, at any SIZE: 120 made the table at 3k (the profile's own KD takes
# 240 there, 80 at 10k); set EPOCHS to follow another size's schedule
epochs="${EPOCHS:-120}"
out="${OUT:-results/pairs}"
runs="${RUNS_DIR:-$out/runs}"
mapfile -t profile < <(python -m catdog.profiles args cpu "$size" --overrides-only)
# The teacher is one model per arch (teacher.seed, not train.seed): the first seed in SEEDS
# scores it on test (teacher_score: 12 min for EfficientNet-Lite2 on the AVX512 EPYC, an hour on
# a Zen 3 one); SCORE_TEACHER=0 leaves it to runs already in $RUNS_DIR.
score_teacher="${SCORE_TEACHER:-1}"
names=()
for seed in ${SEEDS:-0 1}; do
  for arch in ${ARCHS:-efficientnet_lite2 efficientnet_lite0 mobilenet_v2}; do
    name="pair-$size-$arch-s$seed-$(date +%H%M%S)"
    targets=(evaluate@kd) methods=(kd)
    if [ "$score_teacher" = 1 ]; then targets+=(teacher_score) methods+=(teacher); fi
    dvc exp run --queue -n "$name" -S "data.source=$source" "${profile[@]}" -S "teacher.arch=$arch" \
      -S "train.seed=$seed" \
      -S "distill.epochs=$epochs" -S "distill.patience=$epochs" "$@" "${targets[@]}"
    names+=("$name:$size-$arch-s$seed:${methods[*]}")
  done
  score_teacher=0
done
run_queue  # one at a time, to the end (scripts/env.sh)
for entry in "${names[@]}"; do
  IFS=: read -r rev dest methods <<<"$entry"
  # shellcheck disable=SC2086  # methods: one word each
  python -m catdog.profiles snapshot cpu "$runs/$dest" --rev "$rev" --methods $methods
done
# Each teacher's speed on the machine, idle now that the queue is done (the stages' own seconds
# shared the cores with whatever else ran). BENCH=0 keeps $out/teacher_speeds.json as it is:
# for runs added on another machine than the one that measured it.
if [ "${BENCH:-1}" = 1 ]; then
  python benchmarks/bench_teachers.py --archs ${ARCHS:-efficientnet_lite2 efficientnet_lite0 mobilenet_v2} \
    --steps 10 --json "$out/teacher_speeds.json"
fi
python -m catdog.teacher_pairs --runs-dir "$runs" --out "$out" --speeds "$out/teacher_speeds.json"
python -m catdog.report --runs-dir "$runs" --out "$out"

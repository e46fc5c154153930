#!/usr/bin/env bash
# The cpu profile's SimCLR methods alone (issue 21): at each pool size and seed, one queued DVC
# experiment runs SimCLR's pretraining with its representation score, the fine-tune, evaluate and
# featuremaps (`simclr`), with the floor and ceiling beside it (representation_bounds); a second
# does the same for `simclr_imagenet` where SIMCLR_IMAGENET_SEEDS names the seed. Each finished
# experiment is then snapshotted like the sweep's runs (catdog.profiles snapshot --rev): a
# simclr_imagenet run into $RUNS_DIR/<size>-seed<seed>-simclr_imagenet/ (read by the report), a
# simclr run into $RESCORE_DIR/<size>-seed<seed>/, whose scores (representation, calibration,
# corruptions, held-out agreement) then go into the profile's own snapshot of that size and seed,
# but only if the rerun repeated its test metrics exactly (catdog.profiles add-scores): the same
# model, retrained on the same CPU.
#
#   bash scripts/cpu-simclr.sh                           # seeds 0 and 1, 10k/6k/3k: ~1.5 h
#   SEEDS=1 SIZES=3000 SIMCLR_IMAGENET_SEEDS=1 bash scripts/cpu-simclr.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, PYTHONPATH, TORCH_HOME, $source, run_queue
runs="${RUNS_DIR:-results/cpu/runs}"
rescore="${RESCORE_DIR:-results/cpu/simclr-rescore}"
names=()
for method in simclr simclr_imagenet; do  # every simclr run first
  for seed in ${SEEDS:-0 1}; do
    [ "$method" = simclr ] || [[ " ${SIMCLR_IMAGENET_SEEDS:-1} " == *" $seed "* ]] || continue
    for size in ${SIZES:-10000 6000 3000}; do
      mapfile -t profile < <(python -m catdog.profiles args cpu "$size" --overrides-only)
      name="cpu-$size-s$seed-$method-$(date +%H%M%S)"
      dvc exp run --queue -n "$name" -S "data.source=$source" "${profile[@]}" -S "train.seed=$seed" \
        "$@" "evaluate@$method" "featuremaps@$method" representation_bounds
      dest="$runs/$size-seed$seed-$method"
      [ "$method" != simclr ] || dest="$rescore/$size-seed$seed"
      names+=("$name:$method:$dest")
    done
  done
done
run_queue  # one at a time, to the end (scripts/env.sh)
for entry in "${names[@]}"; do
  IFS=: read -r name method dest <<<"$entry"
  python -m catdog.profiles snapshot cpu "$dest" --rev "$name" --methods "$method"
  if [ "$method" = simclr ] && [ -d "$runs/${dest##*/}" ]; then
    python -m catdog.profiles add-scores "$dest" "$runs/${dest##*/}" simclr
  fi
done

#!/usr/bin/env bash
# The reference comparison on a 2-core CPU (profiles/cpu.yaml): teacher, SimCLR + fine-tune, KD,
# and the scratch and ImageNet baselines at pool sizes 10k / 6k / 3k, one seed, into results/cpu-150-bn/
# (report.md, summary.csv, runs/, the plot, run.log). About 145 minutes per seed on an idle 2-core
# AVX512 EPYC (summed from stage times: results/cpu/README.md, "Time per seed"), 194 on
# an Intel Xeon with AMX (timed: results/cpu-150/README.md, the runs before KD's BN statistics
# were re-estimated at the val side; results/cpu holds the runs before the budget's cuts); start it
# again after an interruption and it goes on where it stopped (finished sizes are skipped, a
# stage cut mid-way resumes from its last epoch). Extra arguments go to every `dvc exp run`.
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, TORCH_HOME, $source
out="${OUT_DIR:-results/cpu-150-bn}"
mkdir -p "$out"
# the console log goes to $out/run.log too, each progress bar cut to its last state at the end
PROFILE=cpu SIZES="${SIZES:-10000 6000 3000}" SEEDS="${SEEDS:-0}" OUT_DIR="$out" \
  bash scripts/sweep.sh -S "data.source=$source" "$@" 2>&1 | tee -a "$out/run.log"
python -m catdog.console_log "$out/run.log"

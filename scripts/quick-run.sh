#!/usr/bin/env bash
# Set up, then run the whole study with the quick profile: real photos from the shared zip,
# small pool and test set, low resolution, few epochs; about 10 minutes on a 2-core CPU.
# It is a DVC experiment in the workspace: params.yaml holds the quick values afterwards
# (`git checkout params.yaml` returns to the full-scale defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export TORCH_HOME="${TORCH_HOME:-$(cd .. && pwd)/shared/torch}"
source="${CATDOG_SOURCE:-$(cd .. && pwd)/shared/data/petimages-180.zip}"
# Your own arguments come last, so e.g. `-S data.size=3000` overrides the profile's value.
dvc exp run \
  -S "data.source=$source" -S data.test=400 -S data.size=800 -S data.image_size=96 \
  -S teacher.image_size=128 \
  -S pretrain.epochs=6 -S pretrain.warmup_epochs=1 -S pretrain.batch_size=128 \
  -S pretrain.image_size=64 \
  -S finetune.epochs=15 -S finetune.patience=6 -S finetune.image_size=64 \
  -S distill.epochs=12 -S distill.patience=6 -S distill.image_size=64 \
  "$@"
dvc metrics show

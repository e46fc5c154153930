#!/usr/bin/env bash
# Set up, then run the whole study with the quick profile (profiles/quick.yaml): real photos from
# the shared zip, small pool and test set, low resolution, few epochs; 14.5 minutes on a 2-core
# AMD EPYC with AVX-512 after the install (a fresh clone, 2026-12-02), 24 on a Zen 3 EPYC
# without it (a copy of the tree with the venv in place, 2026-12-07). It is a DVC experiment in the
# workspace: params.yaml holds the quick values afterwards (`git checkout params.yaml` returns to
# the full-scale defaults).
set -euo pipefail
source "$(dirname "$0")/env.sh"  # install; PATH, TORCH_HOME, $source
mapfile -t profile < <(python -m catdog.profiles args quick)
# Your own arguments come last, so e.g. `-S data.size=300` overrides the profile's value.
dvc exp run -S "data.source=$source" "${profile[@]}" "$@"
dvc metrics show

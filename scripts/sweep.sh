#!/usr/bin/env bash
# The full study, resumable: every method at each pool size and seed, one DVC experiment each,
# then the report. Each finished run is snapshotted (params.yaml, dvc.lock, metrics/) into
# $RUNS_DIR/<size>-seed<seed>/ and skipped when the sweep is started again, so an interrupted
# sweep (or one split over several short sessions) goes on where it stopped; a run that was
# cut mid-stage resumes from its epoch checkpoint. With a PROFILE, a snapshot that ran other
# params than this run would (python -m catdog.profiles check) stops the sweep instead.
#
#   SIZES="10000 6000 3000" SEEDS="0 1 2" PROFILE=cpu bash scripts/sweep.sh [extra `dvc exp run` args]
#   e.g. bash scripts/sweep.sh -S data.source=$(realpath ../shared/data/petimages-180.zip)
#
# PROFILE names profiles/<name>.yaml, whose overrides (and methods) every run gets; without it
# the runs use params.yaml as it is (the full-scale defaults). Your own arguments come last.
# Writes $OUT_DIR (default results/): report.md, summary.csv, runs.json, accuracy_vs_size.png
# and runs/ (the snapshots).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${SIZES:-10000 6000 3000}"
seeds="${SEEDS:-0 1 2}"
out="${OUT_DIR:-results}"
runs="${RUNS_DIR:-$out/runs}"
profile="${PROFILE:-}"
if ! git rev-parse --git-dir >/dev/null 2>&1; then  # e.g. a bare copy of the tree on a GPU box
  echo "sweep: no git repository here; making a throwaway one for dvc experiments" >&2
  git init -q && git add -A && git -c user.name=sweep -c user.email=sweep@localhost commit -qm sweep
fi
for seed in $seeds; do
  for size in $sizes; do
    dest="$runs/$size-seed$seed"
    if [ -f "$dest/params.yaml" ]; then
      # a snapshot made with another recipe (the profile or params.yaml changed since) stops the
      # sweep, naming the params: skipping it would report the old recipe as the new one
      [ -z "$profile" ] || python -m catdog.profiles check "$profile" "$size" "$dest" "$@" || exit 2
      echo "sweep: $dest done, skipping" >&2
      continue
    fi
    echo "sweep: data.size=$size train.seed=$seed${profile:+ profile=$profile} ($(date +%T))" >&2
    prof=()
    if [ -n "$profile" ]; then
      mapfile -t prof < <(python -m catdog.profiles args "$profile" "$size")
      [ "${#prof[@]}" -gt 0 ] || { echo "sweep: profile $profile gave no arguments" >&2; exit 2; }
    fi
    dvc exp run "${prof[@]}" -S "data.size=$size" -S "train.seed=$seed" "$@"
    mkdir -p "$runs"
    if [ -n "$profile" ]; then
      python -m catdog.profiles snapshot "$profile" "$dest"  # only this profile's metrics
    else
      tmp="$dest.tmp"
      rm -rf "$tmp" && mkdir -p "$tmp"
      cp params.yaml dvc.lock "$tmp/" && cp -r metrics "$tmp/"
      mv "$tmp" "$dest"  # atomic: a snapshot is complete or absent
    fi
  done
done
python -m catdog.report --runs-dir "$runs" --out "$out"

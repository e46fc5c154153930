# Sourced by the run scripts: install (scripts/setup.sh), then the environment every run needs:
# the venv on PATH, PYTHONPATH and CATDOG_RESUME_DIR (below), TORCH_HOME (ImageNet weights),
# $source (the photos: the shared zip beside the checkout unless CATDOG_SOURCE names another zip
# or folder), and run_queue (the DVC queue, run to its end).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# Stages import catdog from ./src of the directory they run in: a queued experiment (`dvc queue
# start`) runs in its own copy of the tree, and without this the editable install would hand it
# the workspace's code, edited since it was queued, instead of its own.
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
# A killed queued experiment's checkpoints stay here, so that queued again it resumes
# (catdog/resume_store.py).
export CATDOG_RESUME_DIR="${CATDOG_RESUME_DIR:-$PWD/.dvc/tmp/catdog-resume}"
export TORCH_HOME="${TORCH_HOME:-$(cd .. && pwd)/shared/torch}"
source="${CATDOG_SOURCE:-$(cd .. && pwd)/shared/data/petimages-180.zip}"

# Run the DVC experiment queue to its end, one experiment at a time (two trainings on 2 cores
# only slow each other down), then print its status. A worker has been seen to stop with
# experiments still queued (a JSON decode error in its log): when two polls a minute apart find
# experiments queued and none running, a worker is started again.
run_queue() {
  local status idle=0
  dvc queue start --jobs 1
  # (status read whole first: with pipefail, grep -q closing the pipe early would end the wait)
  while status=$(dvc queue status) && grep -Eq 'Queued|Running' <<<"$status"; do
    if grep -q Running <<<"$status"; then idle=0; else idle=$((idle + 1)); fi
    if [ "$idle" -ge 2 ]; then
      echo "run_queue: experiments queued but none running: starting a worker again" >&2
      dvc queue start --jobs 1
      idle=0
    fi
    sleep 60
  done
  dvc queue status
}

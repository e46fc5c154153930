# Sourced by the run scripts: install (scripts/setup.sh), then the environment every run needs:
# the venv on PATH, TORCH_HOME (ImageNet weights) and $source (the photos: the shared zip beside
# the checkout unless CATDOG_SOURCE names another zip or folder).
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

# Sourced by the run scripts: install (scripts/setup.sh), then the environment every run needs:
# the venv on PATH, TORCH_HOME (ImageNet weights) and $source (the photos: the shared zip beside
# the checkout unless CATDOG_SOURCE names another zip or folder).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export TORCH_HOME="${TORCH_HOME:-$(cd .. && pwd)/shared/torch}"
source="${CATDOG_SOURCE:-$(cd .. && pwd)/shared/data/petimages-180.zip}"

#!/usr/bin/env bash
# Create .venv with the pinned stack from pyproject.toml (idempotent), plus Chromium for the
# offline-plots test. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import catdog, dvc, lightly, pytest" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "note: install Chromium (Debian: apt-get install chromium) for the offline-plots test" >&2
  fi
fi

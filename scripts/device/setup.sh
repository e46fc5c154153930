# Source this on the GPU box at the start of every call:  source scripts/device/setup.sh
# It stashes the kit part(s) this call carried outside the repository (the stash survives while
# the box stays warm); once every part is there it rebuilds the kit (checking its sha256),
# unpacks the wheels, the photo zip and the ImageNet weights, and installs the wheels into
# $STASH/site. It exports PATH, PYTHONPATH and TORCH_HOME, and CATDOG_READY=1 once all is in place.
STASH="${STASH:-/root/stash}"
mkdir -p "$STASH"
export PYTHONPATH="$STASH/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_HOME="$STASH/torch"
export PATH="$STASH/bin:$STASH/site/bin:$PATH"  # dvc's entry point; `python` for the stage commands
mkdir -p "$STASH/bin"
command -v python >/dev/null 2>&1 || ln -sf "$(command -v python3)" "$STASH/bin/python"
export CATDOG_READY=0
if [ ! -f "$STASH/ready" ]; then
  cp .device-kit/part-* .device-kit/kit.sha256 .device-kit/parts.txt "$STASH/" 2>/dev/null || true
  if [ ! -f "$STASH/unpacked" ] && [ -f "$STASH/parts.txt" ]; then
    missing=$(cd "$STASH" && while read -r p; do [ -f "$p" ] || echo "$p"; done < parts.txt)
    if [ -n "$missing" ]; then
      echo "device setup: kit parts still missing: $(echo $missing)" >&2
    else
      (cd "$STASH" && cat $(cat parts.txt) > kit.tar && sha256sum -c --quiet kit.sha256 \
        && tar -xf kit.tar && rm kit.tar $(cat parts.txt) && touch unpacked) \
        || echo "device setup: the kit's parts do not rebuild it (sha256); carry them again" >&2
    fi
  fi
  if [ -f "$STASH/unpacked" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --target "$STASH/site" "$STASH"/wheels/*.whl && touch "$STASH/ready" \
      || echo "device setup: installing the wheels failed" >&2
  fi
fi
if [ -f "$STASH/ready" ]; then
  export CATDOG_READY=1
  echo "device setup: ready (photos $STASH/petimages-180.zip, TORCH_HOME $TORCH_HOME)" >&2
fi

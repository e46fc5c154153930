#!/usr/bin/env bash
# Pack what a bare GPU box needs for the study into .device-kit/ (git-ignored): the wheels of
# scripts/device/requirements.txt, torchvision's ImageNet MobileNetV2 weights and the photo zip,
# as one tar split into parts small enough to travel one per call (each call carries at most
# 64 MiB with the repository). scripts/device/setup.sh puts them back together on the box.
#
#   bash scripts/device/kit.sh [photo zip] [TORCH_HOME]   (defaults: the ../shared copies)
set -euo pipefail
cd "$(dirname "$0")/../.."
zip="${1:-../shared/data/petimages-180.zip}"
torch_home="${2:-../shared/torch}"
weights="$torch_home/hub/checkpoints/mobilenet_v2-b0353104.pth"
part_mb="${PART_MB:-54}"
for f in "$zip" "$weights"; do
  [ -f "$f" ] || { echo "error: $f not found (arguments: [photo zip] [TORCH_HOME])" >&2; exit 1; }
done
pip=(.venv/bin/python -m pip)
kit=.device-kit
stage="$kit/stage"
rm -rf "$kit" && mkdir -p "$stage/wheels" "$stage/torch/hub/checkpoints"
# antlr4 (needed by lightly's hydra-core) is published only as source: build its wheel here.
"${pip[@]}" wheel -q --no-deps -w "$stage/wheels" antlr4-python3-runtime==4.9.3
"${pip[@]}" download -q --no-deps --only-binary=:all: --find-links "$stage/wheels" \
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$stage/wheels" -r scripts/device/requirements.txt
cp "$weights" "$stage/torch/hub/checkpoints/"
cp "$zip" "$stage/petimages-180.zip"
tar -C "$stage" -cf "$kit/kit.tar" .
rm -rf "$stage"
split -b "${part_mb}M" -d "$kit/kit.tar" "$kit/part-"
(cd "$kit" && sha256sum kit.tar > kit.sha256 && ls part-* > parts.txt && rm kit.tar)
echo "device kit: $(wc -l < "$kit/parts.txt") parts in $kit/ ($(du -sh "$kit" | cut -f1));" \
  "carry .device-kit/kit.sha256, .device-kit/parts.txt and one part per call" >&2

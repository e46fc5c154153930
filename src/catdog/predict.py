"""Classify image files with a trained model: `python -m catdog.predict MODEL PATH [PATH ...]`.

Also holds `dog_probabilities`, the batched inference that the evaluate stage uses too.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from catdog import CLASSES
from catdog.atomic import atomic_path
from catdog.augment import eval_view
from catdog.device import pick_device
from catdog.images import BadImage, decode
from catdog.models import load_model
from catdog.progress_bar import bar

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
BATCH_SIZE = 64  # images decoded and classified at a time
PRECISIONS = ("auto", "fp32", "bf16")  # compute.precision's values, and --precision's

EXIT_HELP = """exit status:
  0  every input was classified
  1  some inputs were skipped (missing, not an image, corrupt); the rest were classified
  2  nothing was classified, the model file is unusable, or the command line is wrong

Each skipped input gets one line on stderr: `error: PATH: reason`."""


@torch.inference_mode()
def dog_probabilities(
    net: nn.Module,
    images: torch.Tensor,
    image_size: int,
    device: torch.device,
    batch_size: int = 256,
    progress: bool = False,
    bf16: bool = True,
) -> np.ndarray:
    """P(Dog) for uint8 images [N, 3, S, S]: whole image resized to `image_size`, normalised.

    The batches run channels_last (faster on CUDA and the CPUs measured), under bf16 autocast on
    CUDA unless `bf16` is False (compute.precision fp32), and in full precision on the CPU.
    """
    cuda = device.type == "cuda"
    net = net.to(device).to(memory_format=torch.channels_last).eval()
    out = []
    starts = range(0, len(images), batch_size)
    for start in bar(starts, desc="predict", unit="batch", disable=not progress):
        batch = images[start : start + batch_size].to(device, non_blocking=cuda)
        x = eval_view(batch, image_size).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16) if cuda and bf16 else nullcontext():
            logits = net(x)
        out.append(logits.float().softmax(dim=1)[:, 1].cpu())
    if not out:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(out).double().numpy()


def inference_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast for whole-image inference (evaluate, predict) under compute.precision: on CUDA
    unless fp32 (`auto` is bf16 there, as in training); the CPU always scores in fp32, as it always
    has (no timing probe for one pass, and its scores stay bit-identical)."""
    return device.type == "cuda" and precision != "fp32"


def expand_inputs(paths: list[str]) -> Iterator[tuple[Path, str | None]]:
    """Yield (file, None) for each input file and each image under an input folder (sorted),
    or (path, reason) for an input that cannot be used at all."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                yield path, "folder holds no image files"
            for file in files:
                yield file, None
        elif path.is_file():
            yield path, None
        else:
            yield path, "not found"


def _batches(paths: list[str], size: int) -> Iterator[tuple[list[Path], list[np.ndarray], int]]:
    """Decode inputs in batches; print one stderr line per unusable input.

    Yields (files, arrays, failures) where failures counts the inputs skipped in this batch."""
    files: list[Path] = []
    arrays: list[np.ndarray] = []
    failures = 0
    for path, reason in expand_inputs(paths):
        if reason is None:
            try:
                arrays.append(decode(path, size))
                files.append(path)
            except BadImage as err:
                reason = str(err)
        if reason is not None:
            print(f"error: {path}: {reason}", file=sys.stderr)
            failures += 1
        if len(files) == BATCH_SIZE:
            yield files, arrays, failures
            files, arrays, failures = [], [], 0
    yield files, arrays, failures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="catdog-predict",
        description="Classify images as Cat or Dog with a catdog model file (models/<method>.pt). "
        "Prints PATH<TAB>LABEL<TAB>PROBABILITY-OF-LABEL per image.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="model file written by a training stage, e.g. models/kd.pt")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="image files, or folders searched recursively for images")
    parser.add_argument("--csv", type=Path,
                        help="also write path,label,prob_cat,prob_dog rows to this file")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to run the network (default: auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="as compute.precision: bf16 autocast on CUDA unless fp32 (default: auto, "
                        "bf16 on CUDA); the CPU always runs in fp32")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        net, meta = load_model(args.model)
        device = pick_device(args.device)
    except SystemExit as err:  # load_model / pick_device end with a one-line "error: ..."
        print(err.code, file=sys.stderr)
        return 2
    size = int(meta["image_size"])
    bf16 = inference_bf16(args.precision, device)

    rows: list[tuple[str, float]] = []
    failures = 0
    for files, arrays, failed in _batches(args.paths, size):
        failures += failed
        if not files:
            continue
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        prob_dog = dog_probabilities(net, images, size, device, batch_size=BATCH_SIZE, bf16=bf16)
        for file, p in zip(files, prob_dog, strict=True):
            label = CLASSES[int(p >= 0.5)]
            print(f"{file}\t{label}\t{max(p, 1 - p):.4f}", flush=True)
            rows.append((str(file), float(p)))

    if args.csv is not None:
        with atomic_path(args.csv) as tmp, tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "prob_cat", "prob_dog"])
            for path, p in rows:
                writer.writerow([path, CLASSES[int(p >= 0.5)], f"{1 - p:.6f}", f"{p:.6f}"])

    if not rows:
        print("error: no image could be classified", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

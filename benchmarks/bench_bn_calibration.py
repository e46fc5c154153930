"""Seconds per BN re-estimation (catdog.bn_calibration, distill.bn_calibration) against one val
pass, for the MobileNetV2 student on random uint8 images of the 180 px cache:

    .venv/bin/python benchmarks/bench_bn_calibration.py [--images 256] [--size 96] [--repeat 5]

The distill stage runs one of each per epoch; their ratio is the re-estimation's share of val.
"""

from __future__ import annotations

import argparse
import platform

import torch

from catdog.bare_step import seconds_per_step
from catdog.bn_calibration import recalibrate_bn
from catdog.models import student
from catdog.supervised import val_scores

CACHE_PX = 180  # side of the prepared image cache
VAL_IMAGES = 180  # the reference's val split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="images re-estimating the statistics")
    parser.add_argument("--size", type=int, default=96, help="whole-image side (distill.eval_size)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls of each, after one untimed (mean)")
    args = parser.parse_args()
    device = torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    pool = torch.randint(0, 256, (1024, 3, CACHE_PX, CACHE_PX), dtype=torch.uint8, generator=generator)
    val = torch.randint(0, 256, (VAL_IMAGES, 3, CACHE_PX, CACHE_PX), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 2, (VAL_IMAGES,), generator=generator)
    net = student().to(memory_format=torch.channels_last).eval()
    calibrate = seconds_per_step(lambda: recalibrate_bn(net, pool, args.size, args.images, 0, device),
                                 args.repeat, warmup=1, device=device)
    score = seconds_per_step(lambda: val_scores(net, val, labels, args.size, device), args.repeat,
                             warmup=1, device=device)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, fp32")
    print(f"re-estimation on {args.images} images at {args.size} px: {calibrate:.2f} s")
    print(f"val pass on {VAL_IMAGES} images at {args.size} px: {score:.2f} s "
          f"(re-estimation {calibrate / score:.1f}x)")


if __name__ == "__main__":
    main()

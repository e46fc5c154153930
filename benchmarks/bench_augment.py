"""Micro-benchmark: images/s of augment.simclr_views on the current device (not a test).

    .venv/bin/python benchmarks/bench_augment.py [--device cuda] [--batch 512] [--tf32]
"""

from __future__ import annotations

import argparse
import time

import torch

from catdog.augment import simclr_views
from catdog.device import pick_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--batch", type=int, default=512, help="images per call")
    parser.add_argument("--size", type=int, default=180, help="side of the uint8 input images")
    parser.add_argument("--out", type=int, default=128, help="side of the augmented views")
    parser.add_argument("--iters", type=int, default=20, help="timed calls (after 3 warm-up)")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA")
    args = parser.parse_args()

    device = pick_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8,
                           generator=gen, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        simclr_views(images, args.out, gen)
    sync()
    start = time.perf_counter()
    for _ in range(args.iters):
        simclr_views(images, args.out, gen)
    sync()
    seconds = time.perf_counter() - start
    rate = args.batch * args.iters / seconds
    print(f"simclr_views on {device}: batch {args.batch}, {args.size} -> {args.out} px: "
          f"{rate:,.0f} images/s ({1000 * seconds / args.iters:.2f} ms per batch)")


if __name__ == "__main__":
    main()

"""Where the evaluate stage's robustness score spends its time: making the corrupted test images
(catdog.corruptions: five kinds at severities 1-5) against scoring them (a MobileNetV2 student,
whole image resized to the eval side, in the precision evaluate uses on this device).

    .venv/bin/python benchmarks/bench_robustness.py [--n 1000] [--size 80] [--kinds ...]

--n 1000 and --size 80 / 96 are the cpu profile's evaluate (`evaluate.corruption_images`, the
fine-tuned students' and KD's eval sides). Prints seconds per kind, the forward's seconds and
img/s; `--json` keeps them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from catdog.atomic import save_json
from catdog.corruptions import KINDS, SEVERITIES, corrupt
from catdog.device import pick_device
from catdog.models import student
from catdog.predict import dog_probabilities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="test images scored under corruption")
    parser.add_argument("--size", type=int, default=80, help="the student's eval side (px)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-forward", action="store_true", help="time the corruptions only")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_throughput import device_name, find_zip, load_cache  # same folder

    device = pick_device("cpu", args.threads)
    photos, source = load_cache(find_zip(None), args.n, seed=0)
    print(f"{device_name(device)}, {torch.get_num_threads()} threads; {source}")
    net = student()
    seconds: dict[str, float] = {}
    forward = 0.0
    for kind in args.kinds:
        start = time.perf_counter()
        batches = [corrupt(photos, kind, severity, seed=0) for severity in SEVERITIES]
        seconds[kind] = time.perf_counter() - start
        if not args.no_forward:
            start = time.perf_counter()
            for batch in batches:
                dog_probabilities(net, batch, args.size, device, bf16=False)
            forward += time.perf_counter() - start
        print(f"  {kind:15s} corrupt {seconds[kind]:6.2f} s ({len(SEVERITIES)} severities)")
    made = sum(seconds.values())
    scored = args.n * len(SEVERITIES) * len(args.kinds)
    print(f"corrupt {made:.2f} s in all; forward {forward:.2f} s "
          f"({scored / forward:.0f} img/s at {args.size} px)" if forward else f"corrupt {made:.2f} s")
    if args.json:
        save_json(args.json, {"device": device_name(device), "threads": torch.get_num_threads(),
                              "n": args.n, "size": args.size, "corrupt_seconds": seconds,
                              "forward_seconds": forward})


if __name__ == "__main__":
    main()

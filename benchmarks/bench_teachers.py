"""Benchmark: inference images/s of each offline ImageNet teacher on this machine (not a test).

    .venv/bin/python benchmarks/bench_teachers.py [--archs A B ...] [--size 224] [--batch 64]
        [--steps 4] [--json out.json]

For each teacher (the teacher-student pairs: EfficientNet-Lite2, EfficientNet-Lite0, MobileNetV2),
the teacher's forward (`Teacher.embed`: resize the 180 px uint8 photos to --size, normalise,
trunk) in the precision `compute.precision: auto` picks here (a short probe, as the stages do),
channels_last, on real photos from the shared zip, after one untimed batch. The idle machine's
cost of a teacher, apart from the decode and the disk of the teacher_logits stage; the pairs
table (`python -m catdog.teacher_pairs --speeds out.json`) reads its JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from catdog.atomic import save_json
from catdog.precision import set_bf16
from catdog.teachers import Teacher, choose_teacher_precision, to_device

ROOT = Path(__file__).resolve().parent
CPU = torch.device("cpu")
ARCHS = ("efficientnet_lite2", "efficientnet_lite0", "mobilenet_v2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), help="teachers to time")
    parser.add_argument("--size", type=int, default=224, help="teacher input side (teacher.image_size)")
    parser.add_argument("--batch", type=int, default=64, help="images per forward (teacher.batch_size)")
    parser.add_argument("--steps", type=int, default=4, help="timed batches per teacher")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from bench_cpu_speed import rate  # same folder
    from bench_throughput import device_name, find_zip, load_cache

    photos, source = load_cache(find_zip(None), args.batch, seed=0)
    print(f"device: {device_name(CPU)}; torch {torch.__version__}; data: {source}", flush=True)
    rows = []
    for arch in args.archs:
        teacher = to_device(Teacher(arch, args.size), CPU)
        precision = choose_teacher_precision(teacher, "auto", CPU)

        def infer(teacher: Teacher = teacher) -> None:
            with torch.inference_mode():
                teacher.embed(photos)

        speed = rate(infer, len(photos), args.steps, warmup=1)
        set_bf16(CPU, False)
        rows.append({"arch": arch, "image_size": args.size, "precision": precision,
                     "img_per_s": round(speed, 1)})
        print(f"{arch:<20} {args.size} px  {speed:7.1f} img/s ({precision})", flush=True)
    if args.json:
        save_json(args.json, {"device": device_name(CPU), "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()

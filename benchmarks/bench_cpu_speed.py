"""Benchmark: the CPU speed work before and after, on this machine, in one run (not a test).

    .venv/bin/python benchmarks/bench_cpu_speed.py [--steps N] [--teacher models/teacher.pt]
        [--test data/prepared/test.pt] [--n 1000] [--json out.json]

Rows (images/s, real photos from the shared zip at 180 px, idle machine assumed):
  kd step 64 px       distill_loss (cached logits) + SGD step, batch 128: before = contiguous
                      fp32 (what the stages ran on the CPU before), after = channels_last and
                      the precision `compute.precision: auto` picks here
  simclr step 64 px   simclr_loss + SGD step, batch 256, same two settings
  train step 128 px   the default (GPU) recipe's crop size, batch 64, same two settings
  teacher 224 px      EfficientNet-Lite2 inference, batch 64: before = fp32 (channels_last, as
                      before), after = the precision auto picks
and the teacher's logit passes that the cpu profile (10k / 6k / 3k, KD only) needs: before, the
distill stage asked the teacher about pool + labeled images in every run (10,420 + 6,420 + 3,420
images); after, the teacher_logits stage does it once for the 10,420 images of the largest pool.
With --teacher and --test (a fitted teacher file and the test cache of a pipeline run), it also
scores the teacher on the first --n test images in fp32 and in bf16: accuracy and agreement.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from catdog.atomic import save_json
from catdog.cache import load_split
from catdog.distillation import distill_loss
from catdog.models import FEATURE_DIM, encoder, student
from catdog.precision import choose, set_bf16
from catdog.simclr import simclr_loss
from catdog.teachers import Teacher, batched, choose_teacher_precision, load_teacher, to_device
from catdog.train_loop import choose_precision

ROOT = Path(__file__).resolve().parent
CPU = torch.device("cpu")
PROFILE_POOLS = (10_000, 6_000, 3_000)  # the cpu profile's pool sizes
LABELED = 420  # labeled images, also distilled


def rate(step: Callable[[], None], batch: int, steps: int, warmup: int = 2) -> float:
    """Images/s of `step` (one batch of `batch` images) after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def place(model: nn.Module, after: bool) -> nn.Module:
    return model.to(memory_format=torch.channels_last) if after else model


def kd_step(images: torch.Tensor, after: bool) -> Callable[[], None]:
    from bench_throughput import kd_config  # same folder
    cfg = kd_config("cpu", 3000)  # the cpu profile's KD at the 3k pool
    net = place(student(), after)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(0)
    targets, labels = torch.randn(len(images), 2), torch.full((len(images),), -1)
    labels[:8] = 1

    def step() -> None:
        loss = distill_loss(net, None, images, labels, targets, cfg, gen)  # type: ignore[arg-type]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def simclr_step(images: torch.Tensor, after: bool) -> Callable[[], None]:
    net = student()
    backbone, head = encoder(net), SimCLRProjectionHead(FEATURE_DIM, FEATURE_DIM, 128)
    model = place(nn.ModuleDict({"b": backbone, "h": head}), after)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    crit, gen = NTXentLoss(temperature=0.2), torch.Generator().manual_seed(0)

    def step() -> None:
        loss = simclr_loss(backbone, head, crit, images, 64, gen, jitter=0.8)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def train_step(batch: int, size: int, after: bool) -> Callable[[], None]:
    from catdog.precision import autocast
    net = place(student(), after)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(batch, 3, size, size)
    x = x.contiguous(memory_format=torch.channels_last) if after else x
    y = torch.zeros(batch, dtype=torch.long)

    def step() -> None:
        with autocast(CPU):
            loss = nn.functional.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def before_after(name: str, make: Callable[[bool], Callable[[], None]], batch: int, steps: int,
                 size: int, probe_batch: int) -> dict:
    set_bf16(CPU, False)
    before = rate(make(False), batch, steps)
    after_precision = choose_precision({"precision": "auto"}, CPU, size, probe_batch)
    after = rate(make(True), batch, steps)
    set_bf16(CPU, False)
    row = {"step": name, "before": round(before, 1), "after": round(after, 1),
           "after_precision": after_precision, "speedup": round(after / before, 2)}
    print(f"{name:<20} before {before:7.1f}  after {after:7.1f} img/s ({after_precision}, "
          f"channels_last)  {after / before:.2f}x", flush=True)
    return row


def teacher_rows(images: torch.Tensor, steps: int) -> list[dict]:
    teacher = to_device(Teacher("efficientnet_lite2", 224), CPU)

    def infer() -> None:
        with torch.inference_mode():
            teacher.embed(images)

    set_bf16(CPU, False)
    before = rate(infer, len(images), steps, warmup=1)
    precision = choose_teacher_precision(teacher, "auto", CPU)
    after = rate(infer, len(images), steps, warmup=1)
    set_bf16(CPU, False)
    passes_before = sum(n + LABELED for n in PROFILE_POOLS)
    passes_after = PROFILE_POOLS[0] + LABELED
    print(f"{'teacher 224 px':<20} before {before:7.1f}  after {after:7.1f} img/s ({precision})  "
          f"{after / before:.2f}x", flush=True)
    print(f"cpu profile teacher logits: before {passes_before:,} images = {passes_before / before:.0f} s; "
          f"after {passes_after:,} images = {passes_after / after:.0f} s "
          f"({passes_before / before / (passes_after / after):.1f}x less)", flush=True)
    return [{"step": "teacher 224 px", "before": round(before, 1), "after": round(after, 1),
             "after_precision": precision, "speedup": round(after / before, 2)},
            {"step": "cpu profile teacher logits (s)", "before": round(passes_before / before),
             "after": round(passes_after / after),
             "speedup": round(passes_before / before / (passes_after / after), 2)}]


def teacher_accuracy(teacher_file: Path, test_file: Path, n: int) -> dict:
    """Test accuracy of the fitted teacher on the first n test images in fp32 and in bf16."""
    teacher, test = load_teacher(teacher_file, CPU), load_split(test_file)
    images, labels = test.images[:n], test.labels[:n]
    out = {}
    for precision in ("fp32", "bf16"):
        choose(precision, CPU)
        out[precision] = batched(teacher, images, 64, desc=f"teacher {precision}").argmax(1)
    set_bf16(CPU, False)
    acc = {p: float((pred == labels).float().mean()) for p, pred in out.items()}
    agree = float((out["fp32"] == out["bf16"]).float().mean())
    print(f"teacher on {len(labels)} test images: accuracy fp32 {acc['fp32']:.4f}, bf16 "
          f"{acc['bf16']:.4f}; predictions agree on {agree:.2%}", flush=True)
    return {"n": len(labels), "accuracy_fp32": acc["fp32"], "accuracy_bf16": acc["bf16"],
            "agreement": agree}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per row")
    parser.add_argument("--teacher", type=Path, help="fitted teacher file (models/teacher.pt)")
    parser.add_argument("--test", type=Path, help="test cache (data/prepared/test.pt)")
    parser.add_argument("--n", type=int, default=1000, help="test images for the fp32/bf16 check")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    from bench_throughput import device_name, find_zip, load_cache  # same folder
    photos, source = load_cache(find_zip(None), 256, seed=0)
    print(f"device: {device_name(CPU)}; torch {torch.__version__}; data: {source}", flush=True)
    rows = [
        before_after("kd step 64 px", lambda a: kd_step(photos[:128], a), 128, args.steps, 64, 128),
        before_after("simclr step 64 px", lambda a: simclr_step(photos, a), 256, max(2, args.steps // 2),
                     64, 256),
        before_after("train step 128 px", lambda a: train_step(64, 128, a), 64, args.steps, 128, 64),
        *teacher_rows(photos[:64], max(2, args.steps // 2)),
    ]
    result = {"device": device_name(CPU), "torch": torch.__version__, "rows": rows}
    if args.teacher and args.test:
        result["teacher_precision"] = teacher_accuracy(args.teacher, args.test, args.n)
    if args.json:
        save_json(args.json, result)


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(ROOT))
    main()

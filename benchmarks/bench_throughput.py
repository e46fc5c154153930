"""Benchmark: training and inference images/s of catdog's steps on this device (not a test).

    .venv/bin/python benchmarks/bench_throughput.py [--device auto|cpu|cuda] [--batch N]
        [--size PX] [--steps N] [--warmup N] [--json out.json]

Measures, from a uint8 image cache kept on the device (real photos from petimages-180.zip when
it is found, else random pixels):
  simclr        catdog's `simclr_loss` (two GPU-batched views) + backward + SGD step
  kd cached     `distill_loss` with cached teacher logits + AdamW step
  kd online     `distill_loss` asking EfficientNet-Lite2 at 224 px about every crop + AdamW step
  eval          `predict.dog_probabilities` (whole image resized to --size, forward)
  limit         a bare MobileNetV2 training step (cross-entropy + AdamW) on ready-made tensors of
                the crop size: the device's ceiling for training at that size; SimCLR and KD are
                reported as a fraction of it (a SimCLR image counts as its two passes)
and, in the same run, the plain baseline a user of lightly's examples would write: lightly's
`SimCLRTransform` on PIL images in a torch DataLoader (one worker per CPU core) feeding the same
MobileNetV2 SimCLR step. Images/s counts source images: a SimCLR image is two training passes.
On CUDA every step runs bf16 autocast + channels_last, as the stages do.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms import SimCLRTransform
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from catdog.atomic import save_json
from catdog.bare_step import seconds_per_step
from catdog.device import pick_device
from catdog.distillation import distill_loss
from catdog.models import FEATURE_DIM, encoder, student
from catdog.params import load_params
from catdog.predict import dog_probabilities
from catdog.profiles import load_profile, params_for
from catdog.simclr import simclr_loss
from catdog.teachers import Teacher, to_device
from catdog.train_loop import autocast, optimize, prepare_model

ROOT = Path(__file__).resolve().parents[1]
ZIP_CANDIDATES = (ROOT.parent / "shared/data/petimages-180.zip",
                  ROOT / "shared/data/petimages-180.zip")
SOURCE_SIZE = 180  # side of the uint8 cache images (the pipeline's default data.image_size)
PROJ_DIM = 128  # SimCLR projection output dimension (params.yaml pretrain.proj_dim)
TEMPERATURE = 0.2  # NT-Xent temperature (pretrain.temperature)
SGD_LR = 0.3  # SimCLR SGD learning rate (pretrain.lr); speed does not depend on it
ADAMW_LR, ADAMW_WD = 0.002, 0.05  # distill.lr, distill.weight_decay
TEACHER_ARCH, TEACHER_SIZE = "efficientnet_lite2", 224  # online teacher and its input side
PREFETCH = 2  # DataLoader batches prefetched per worker (torch's default)
DEFAULTS = {  # (batch, size, steps, warmup) per device type: CPU defaults finish in ~2-3 min
    "cpu": (64, 64, 10, 2),
    "cuda": (512, 128, 40, 10),
}


def kd_config(profile: str | None = None, size: int | None = None) -> dict:
    """distill.* as a run reads it: params.yaml, with `profile`'s overrides at pool `size` on top
    (read, not copied, so the benchmark follows every new KD param)."""
    base = load_params(ROOT / "params.yaml")
    if profile:
        base = params_for(load_profile(profile, base=ROOT / "params.yaml", root=ROOT / "profiles"),
                          size, base)
    return base["distill"]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads)"


def find_zip(arg: str | None) -> Path | None:
    if arg == "synthetic":
        return None
    if arg:
        if not Path(arg).is_file():
            raise SystemExit(f"error: --data {arg} is not a file")
        return Path(arg)
    return next((p for p in ZIP_CANDIDATES if p.is_file()), None)


def load_cache(zip_path: Path | None, n: int, seed: int) -> tuple[torch.Tensor, str]:
    """uint8 [n, 3, SOURCE_SIZE, SOURCE_SIZE]: the first cats and dogs of the zip (alternating),
    or random pixels when there is no zip."""
    if zip_path is None:
        gen = torch.Generator().manual_seed(seed)
        shape = (n, 3, SOURCE_SIZE, SOURCE_SIZE)
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen), "random pixels"
    with zipfile.ZipFile(zip_path) as zf:
        names = {
            cls: sorted((i.filename for i in zf.infolist()
                         if re.fullmatch(rf"PetImages/{cls}/\d+\.jpg", i.filename)),
                        key=lambda name: int(Path(name).stem))
            for cls in ("Cat", "Dog")
        }
        files = [names[("Cat", "Dog")[i % 2]][i // 2] for i in range(n)]
        arrays = []
        for name in files:
            with Image.open(io.BytesIO(zf.read(name))) as img:
                img = img.convert("RGB").resize((SOURCE_SIZE, SOURCE_SIZE), Image.BILINEAR)
                arrays.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
    return torch.stack(arrays), f"{n} real photos from {zip_path}"


def simclr_model(device: torch.device) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer]:
    """MobileNetV2 encoder + lightly projection head, SGD as in the pretrain stage."""
    backbone = encoder(student())
    head = SimCLRProjectionHead(FEATURE_DIM, FEATURE_DIM, PROJ_DIM)
    model = prepare_model(nn.ModuleDict({"backbone": backbone, "head": head}), device)
    optimizer = torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=0.9, weight_decay=1e-4)
    return backbone, head, optimizer


def constant_lr(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


class PILViews(Dataset):
    """PIL images (made from the cache) -> lightly's two SimCLR views, as in lightly's examples."""

    def __init__(self, images: torch.Tensor, transform: SimCLRTransform):
        self.images = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        return self.transform(self.images[i])


def bench_baseline(cache: torch.Tensor, args: argparse.Namespace, device: torch.device,
                   criterion: nn.Module) -> float:
    """Seconds per SimCLR step fed by lightly's SimCLRTransform in a multi-worker DataLoader."""
    workers = os.cpu_count() or 1
    # Warm-up covers the batches the workers prefetch, so the timed steps wait on real work.
    warmup = max(args.warmup, workers * PREFETCH)
    dataset = PILViews(cache, SimCLRTransform(input_size=args.size))
    sampler = RandomSampler(dataset, replacement=True,
                            num_samples=args.batch * (warmup + args.steps + workers * PREFETCH))
    loader = DataLoader(dataset, batch_size=args.batch, sampler=sampler, num_workers=workers,
                        prefetch_factor=PREFETCH, drop_last=True, pin_memory=device.type == "cuda")
    backbone, head, optimizer = simclr_model(device)
    scheduler = constant_lr(optimizer)
    views = iter(loader)

    def step() -> None:
        x0, x1 = (v.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                  for v in next(views))
        with autocast(device):
            z0, z1 = head(backbone(x0)), head(backbone(x1))
        optimize(criterion(z0.float(), z1.float()), optimizer, scheduler)

    return seconds_per_step(step, args.steps, warmup, device)  # workers end with `views`


def simclr_step(images: torch.Tensor, size: int, pick: Callable[[], torch.Tensor],
                gen: torch.Generator, device: torch.device,
                criterion: nn.Module) -> Callable[[], None]:
    """One pretrain-stage step: catdog's `simclr_loss` on a random batch of the cache + SGD."""
    backbone, head, optimizer = simclr_model(device)
    scheduler = constant_lr(optimizer)

    def step() -> None:
        loss = simclr_loss(backbone, head, criterion, images[pick()], size, gen)
        optimize(loss, optimizer, scheduler)

    return step


def kd_step(teacher: Teacher, images: torch.Tensor, labels: torch.Tensor,
            cached: torch.Tensor | None, cfg: dict, pick: Callable[[], torch.Tensor],
            gen: torch.Generator, device: torch.device) -> Callable[[], None]:
    """One distillation step of a fresh student with AdamW, as in the distill stage; cached
    teacher logits when `cached` is given, else the online teacher on every crop."""
    net = prepare_model(student(), device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=ADAMW_LR, weight_decay=ADAMW_WD)
    scheduler = constant_lr(optimizer)

    def step() -> None:
        idx = pick()
        targets = None if cached is None else cached[idx]
        optimize(distill_loss(net, teacher, images[idx], labels[idx], targets, cfg, gen),
                 optimizer, scheduler)

    return step


def limit_step(batch: int, size: int, device: torch.device) -> Callable[[], None]:
    """A MobileNetV2 training step with nothing around it: fixed normalised input already on the
    device, cross-entropy on 2 classes, AdamW (the ceiling the real steps are measured against)."""
    net = prepare_model(student(), device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=ADAMW_LR, weight_decay=ADAMW_WD)
    scheduler = constant_lr(optimizer)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(2, (batch,), device=device)

    def step() -> None:
        with autocast(device):
            logits = net(x)
        optimize(nn.functional.cross_entropy(logits.float(), y), optimizer, scheduler)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch", type=int, help="images per step (default: cpu 64, cuda 512)")
    parser.add_argument("--size", type=int, help="crop side fed to the student (cpu 64, cuda 128)")
    parser.add_argument("--steps", type=int, help="timed steps per benchmark (cpu 10, cuda 40)")
    parser.add_argument("--warmup", type=int, help="untimed steps before timing (cpu 2, cuda 10)")
    parser.add_argument("--images", type=int, help="images in the cache (default 4 x batch)")
    parser.add_argument("--data", help="petimages zip, or 'synthetic' (default: the shared zip "
                        "if found, else random pixels)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    device = pick_device(args.device)
    for name, default in zip(("batch", "size", "steps", "warmup"), DEFAULTS[device.type],
                             strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if min(args.batch, args.size, args.steps) < 1 or args.warmup < 0:
        raise SystemExit("error: --batch, --size and --steps must be >= 1, --warmup >= 0")
    n_images = args.images if args.images is not None else 4 * args.batch
    if n_images < 1:
        raise SystemExit("error: --images must be >= 1")
    zip_path = find_zip(args.data)

    print(f"device: {device_name(device)}")
    print(f"torch {torch.__version__}, batch {args.batch}, {SOURCE_SIZE} -> {args.size} px, "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    cache, source = load_cache(zip_path, n_images, seed=0)
    print(f"data: {source}", flush=True)
    images = cache.to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    torch.manual_seed(0)

    def pick() -> torch.Tensor:
        return torch.randint(len(images), (args.batch,), generator=gen, device=device)

    criterion = NTXentLoss(temperature=TEMPERATURE)
    results: dict[str, float] = {}  # step name -> seconds per step

    # 1. SimCLR step: catdog's GPU-batched views, then lightly's transforms in a DataLoader.
    print("timing simclr (ours) ...", flush=True)
    step = simclr_step(images, args.size, pick, gen, device, criterion)
    results["simclr (ours)"] = seconds_per_step(step, args.steps, args.warmup, device)
    print("timing simclr (baseline) ...", flush=True)
    results["simclr (baseline)"] = bench_baseline(cache, args, device, criterion)

    # 2. KD step, cached and online teacher (head left at zeros: speed does not depend on it).
    cfg = kd_config() | {"image_size": args.size}
    teacher = to_device(Teacher(TEACHER_ARCH, TEACHER_SIZE), device)
    labels = torch.where(torch.rand(len(images), generator=gen, device=device) < 0.1,
                         torch.randint(2, (len(images),), generator=gen, device=device), -1)
    cached = torch.randn(len(images), 2, generator=gen, device=device)
    for mode in ("cached", "online"):
        print(f"timing kd {mode} ...", flush=True)
        targets = cached if mode == "cached" else None
        step = kd_step(teacher, images, labels, targets, cfg, pick, gen, device)
        results[f"kd {mode}"] = seconds_per_step(step, args.steps, args.warmup, device)

    # 3. Evaluation: one call of dog_probabilities over `batch` images per step.
    net = student().eval()

    def eval_step() -> None:
        dog_probabilities(net, images[: args.batch], args.size, device, batch_size=args.batch)

    print("timing eval ...", flush=True)
    results["eval"] = seconds_per_step(eval_step, args.steps, args.warmup, device)

    # 4. The ceiling: a bare MobileNetV2 training step at the crop size.
    print("timing limit ...", flush=True)
    results["limit"] = seconds_per_step(limit_step(args.batch, args.size, device), args.steps,
                                        args.warmup, device)

    baseline = args.batch / results["simclr (baseline)"]
    limit = args.batch / results["limit"]
    rows = []
    for name, seconds in results.items():
        rate = args.batch / seconds
        ratio = rate / baseline if name.startswith("simclr") else None
        passes = 2 if name.startswith("simclr") else 1  # training passes per source image
        of_limit = passes * rate / limit if name.startswith(("simclr", "kd")) else None
        rows.append({"step": name, "images_per_s": round(rate, 1),
                     "ms_per_step": round(1000 * seconds, 1),
                     "vs_baseline": None if ratio is None else round(ratio, 2),
                     "of_limit": None if of_limit is None else round(of_limit, 3)})

    print(f"\n{'step':<20}{'images/s':>12}{'ms/step':>12}{'ours/baseline':>16}{'of limit':>10}")
    for row in rows:
        ratio = "" if row["vs_baseline"] is None else f"{row['vs_baseline']:.2f}x"
        share = "" if row["of_limit"] is None else f"{100 * row['of_limit']:.0f}%"
        print(f"{row['step']:<20}{row['images_per_s']:>12,.1f}{row['ms_per_step']:>12,.1f}"
              f"{ratio:>16}{share:>10}")
    print("(simclr images/s counts source images: two views, two training passes each;\n"
          " 'of limit' compares training passes/s with the bare MobileNetV2 step, 'limit')")

    if args.json is not None:
        save_json(args.json, {
            "device": device_name(device), "device_type": device.type,
            "torch": torch.__version__, "data": source, "batch": args.batch,
            "source_size": SOURCE_SIZE, "size": args.size, "steps": args.steps,
            "warmup": args.warmup, "dataloader_workers": os.cpu_count(), "results": rows,
        })
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

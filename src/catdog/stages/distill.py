"""Stage `distill`: knowledge distillation from the fitted teacher into MobileNetV2.

L = alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(y, p_student)
(catdog.kd_loss). The soft term covers the unlabeled pool and the labeled images (the
teacher needs no labels); the hard term only the labeled ones. Early stopping on val.

distill.teacher_mode picks how the teacher is asked:
- cached: teacher logits of each whole image, computed once by the teacher_logits stage;
- online: teacher logits of the very crop the student sees (function matching, Beyer
  et al. 2022): costs a teacher forward per step, teaches consistently.

`python -m catdog.stages.distill scratch` (method kd) starts from random init;
`imagenet` (method imagenet_kd) from ImageNet weights; `simclr` (method simclr_kd)
from the fine-tuned SimCLR model, the SimCLRv2 recipe.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from catdog.augment import crop_flip01, normalize
from catdog.cache import load_split, split_path
from catdog.kd_loss import feature_loss, kd_loss
from catdog.models import FEATURE_DIM, imagenet_student, load_model, student
from catdog.params import load_or_exit
from catdog.stage_time import StageClock
from catdog.supervised import make_optimizer, train_student
from catdog.teachers import LOGITS_FILE, TEACHER_FILE, Teacher, load_logits, load_teacher
from catdog.train_loop import (
    autocast,
    batches,
    optimize,
    prepare_model,
    progress,
    stage_setup,
)

METHODS = {"scratch": "kd", "imagenet": "imagenet_kd", "simclr": "simclr_kd"}
MIN_SCALE = 0.35  # smallest crop area fraction of the student's (and online teacher's) views


def initial_model(init: str) -> nn.Module:
    if init == "simclr":
        return load_model(Path("models/simclr.pt"))[0]
    return imagenet_student() if init == "imagenet" else student()


def student_outputs(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, last feature map [N, 1280, h, w]) of a MobileNetV2: its forward, split open."""
    fmap = net.features(x)
    return net.classifier(torch.flatten(F.adaptive_avg_pool2d(fmap, 1), 1)), fmap


def distill_loss(net: nn.Module, teacher: Teacher, batch: torch.Tensor, labels: torch.Tensor,
                 targets: torch.Tensor | None, cfg: dict, generator: torch.Generator,
                 adapter: nn.Module | None = None) -> torch.Tensor:
    """KD loss of one uint8 batch (labels < 0 mark unlabeled images). With `targets` (cached
    teacher logits) the student sees a random crop; without, the teacher is asked online about
    the very same crop, cut at the teacher's resolution and shrunk for the student. With an
    `adapter` (1x1 conv, student -> teacher channels) the feature-map hint loss is added."""
    size = cfg["image_size"]
    crops = crop_flip01(batch, size if targets is not None else teacher.image_size, generator,
                        min_scale=MIN_SCALE)
    teacher_map = None
    if targets is None:
        with torch.no_grad():
            targets, teacher_map = teacher.forward01_with_map(crops)
        crops = F.interpolate(crops, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
    with autocast(batch.device):
        logits, fmap = student_outputs(net, normalize(crops).contiguous(memory_format=torch.channels_last))
        hint = adapter(fmap) if adapter is not None else None
    loss = kd_loss(logits, targets, labels, temperature=cfg["temperature"], alpha=cfg["alpha"],
                   labeled_mask=labels >= 0, label_smoothing=cfg["label_smoothing"])
    if hint is not None and teacher_map is not None:
        loss = loss + cfg["feature_weight"] * feature_loss(hint, teacher_map)
    return loss


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("init", nargs="?", default="scratch", choices=list(METHODS),
                        help="student's starting weights")
    args = parser.parse_args(argv)
    method = METHODS[args.init]
    clock = StageClock(f"distill-{method}")
    params = load_or_exit()
    cfg, device, seed, generator = stage_setup(params, "distill")
    pool, labeled, val = (load_split(name) for name in ("pool", "labeled", "val"))
    teacher = load_teacher(TEACHER_FILE, device)

    # Training set: labeled images first (with labels), then the unlabeled pool.
    images = torch.cat([labeled.images, pool.images]).to(device)
    labels = torch.cat([labeled.labels, torch.full((len(pool),), -1)]).to(device)
    online = cfg["teacher_mode"] == "online"
    # Cached mode: the teacher's logits of the whole images, computed once by teacher_logits.
    soft_targets = None if online else load_logits(LOGITS_FILE, labeled.files + pool.files).to(device)

    net = prepare_model(initial_model(args.init), device)
    # FitNets adapter: student's 1280 channels -> the teacher's feature width, trained with the student.
    adapter = nn.Conv2d(FEATURE_DIM, teacher.dim, 1) if cfg["feature_weight"] > 0 else None
    trained = nn.ModuleDict({"net": net, **({"adapter": adapter} if adapter else {})})
    trained = prepare_model(trained, device)
    optimizer, scheduler = make_optimizer(trained, cfg, len(images))

    def train_epoch(epoch: int) -> dict[str, float]:
        total = torch.zeros((), device=device)
        order = batches(len(images), cfg["batch_size"], generator)
        for idx in progress(order, f"{method} {epoch}"):
            targets = None if online else soft_targets[idx]
            loss = distill_loss(net, teacher, images[idx], labels[idx], targets, cfg, generator,
                                adapter)
            optimize(loss, optimizer, scheduler)
            total += loss.detach()
        return {"train/loss": (total / len(order)).item()}

    inputs = [split_path(n) for n in ("pool", "labeled", "val")] + [TEACHER_FILE]
    inputs += [] if online else [LOGITS_FILE]
    result = train_student(net, optimizer, scheduler, generator, train_epoch, val, {**cfg, "seed": seed},
                           device, stage="distill", method=method, init=args.init, inputs=inputs,
                           trained=trained)
    clock.save(carried=result.resumed_seconds)


if __name__ == "__main__":
    main()

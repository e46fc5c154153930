"""Stage `distill`: knowledge distillation from the fitted teacher into MobileNetV2.

L = alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(y, p_student)
(catdog.kd_loss). The soft term covers the unlabeled pool and the labeled images (the
teacher needs no labels); the hard term only the labeled ones. Early stopping on val.

distill.teacher_mode picks how the teacher is asked:
- cached: teacher logits of each whole image, computed once by the teacher_logits stage;
- online: teacher logits of the very crop the student sees (function matching, Beyer
  et al. 2022): costs a teacher forward per step, teaches consistently;
- crops: one of K crops per image stored with the teacher's logits of each by the teacher_crops
  stage (FKD, Shen & Xing 2022): consistent teaching at a cost paid once per study.
Attention transfer (distill.attention_weight) reads the teacher's maps of the same crop: online,
stored with each crop, or, in cached mode, the whole image's stored maps cut to the crop. The
FitNets hint (distill.feature_weight) reads the teacher's last feature map: online, or, in cached
mode, the whole image's stored map cut to the crop (teacher_crops.features).

`python -m catdog.stages.distill scratch` (method kd) starts from random init;
`imagenet` (method imagenet_kd) from ImageNet weights; `simclr` (method simclr_kd)
from the fine-tuned SimCLR model, the SimCLRv2 recipe.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from catdog.cache import load_split, split_path
from catdog.distillation import distill_loss
from catdog.models import FEATURE_DIM, imagenet_student, load_model, student
from catdog.params import load_or_exit
from catdog.stage_time import StageClock
from catdog.supervised import make_optimizer, train_student
from catdog.teachers import (
    CROPS_FILE,
    LOGITS_FILE,
    TEACHER_FILE,
    load_crops,
    load_image_energies,
    load_image_features,
    load_logits,
    load_teacher,
)
from catdog.train_loop import (
    batches,
    optimize,
    prepare_model,
    progress,
    stage_setup,
)

METHODS = {"scratch": "kd", "imagenet": "imagenet_kd", "simclr": "simclr_kd"}


def initial_model(init: str, stem_stride: int = 2) -> nn.Module:
    """The student at its start; the fine-tuned SimCLR model keeps its own stem stride."""
    if init == "simclr":
        return load_model(Path("models/simclr.pt"))[0]
    return (imagenet_student(stem_stride=stem_stride) if init == "imagenet"
            else student(stem_stride=stem_stride))


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
    online, stored_mode = cfg["teacher_mode"] == "online", cfg["teacher_mode"] == "crops"
    # Online mode asks the teacher about every crop; cached and crops modes read its logits and
    # never load it.
    teacher = load_teacher(TEACHER_FILE, device) if online else None

    # Training set: labeled images first (with labels), then the unlabeled pool.
    images = torch.cat([labeled.images, pool.images]).to(device)
    labels = torch.cat([labeled.labels, torch.full((len(pool),), -1)]).to(device)
    # Cached mode: the teacher's logits of the whole images, computed once by teacher_logits.
    soft_targets = (load_logits(LOGITS_FILE, labeled.files + pool.files).to(device)
                    if cfg["teacher_mode"] == "cached" else None)
    # Cached mode with attention transfer: the teacher's maps of each whole image, cut to each crop.
    image_energies = ([e.to(device) for e in load_image_energies(CROPS_FILE, labeled.files + pool.files)]
                      if soft_targets is not None and cfg["attention_weight"] > 0 else None)
    # Cached mode with the FitNets hint: the teacher's last feature map of each whole image, cut to each crop.
    image_features = (load_image_features(CROPS_FILE, labeled.files + pool.files).to(device)
                      if soft_targets is not None and cfg["feature_weight"] > 0 else None)
    # Crops mode: K stored crops of each image (boxes) and the teacher's logits of each.
    stored = None
    if stored_mode:
        boxes, crop_logits, energies = load_crops(CROPS_FILE, labeled.files + pool.files)
        if cfg["attention_weight"] > 0 and not energies:
            raise SystemExit(f"error: {CROPS_FILE} holds no attention maps: distill.attention_weight "
                             "in crops mode needs teacher_crops.attention true")
        # the teacher's attention maps only when attention transfer reads them
        keep = energies if cfg["attention_weight"] > 0 else []
        stored = (boxes.to(device), crop_logits.to(device), [e.to(device) for e in keep])

    net = prepare_model(initial_model(args.init, params["student"]["stem_stride"]), device)
    # FitNets adapter: student's 1280 channels -> the teacher's feature width, trained with the student.
    teacher_dim = teacher.dim if teacher else image_features.shape[1] if image_features is not None else 0
    adapter = nn.Conv2d(FEATURE_DIM, teacher_dim, 1) if teacher_dim and cfg["feature_weight"] > 0 else None
    trained = nn.ModuleDict({"net": net, **({"adapter": adapter} if adapter else {})})
    trained = prepare_model(trained, device)
    optimizer, scheduler = make_optimizer(trained, cfg, len(images))

    def train_epoch(epoch: int) -> dict[str, float]:
        total = torch.zeros((), device=device)
        order = batches(len(images), cfg["batch_size"], generator)
        for idx in progress(order, f"{method} {epoch}"):
            targets = soft_targets[idx] if soft_targets is not None else None
            batch_stored = None
            if stored is not None:
                boxes, crop_logits, energies = stored
                batch_stored = (boxes[idx], crop_logits[idx], [e[idx] for e in energies])
            maps = [e[idx] for e in image_energies] if image_energies is not None else None
            features = image_features[idx] if image_features is not None else None
            loss = distill_loss(net, teacher, images[idx], labels[idx], targets, cfg, generator,
                                adapter, batch_stored, maps, features)
            optimize(loss, optimizer, scheduler)
            total += loss.detach()
        return {"train/loss": (total / len(order)).item()}

    inputs = [split_path(n) for n in ("pool", "labeled", "val")] + [TEACHER_FILE]
    inputs += {"cached": [LOGITS_FILE], "crops": [CROPS_FILE]}.get(cfg["teacher_mode"], [])
    inputs += [CROPS_FILE] if image_energies is not None or image_features is not None else []
    result = train_student(net, optimizer, scheduler, generator, train_epoch, val, {**cfg, "seed": seed},
                           device, stage="distill", method=method, init=args.init, inputs=inputs,
                           trained=trained, checkpoint_every=params["compute"]["checkpoint_every"],
                           calibration=images)
    clock.save(carried=result.resumed_seconds)


if __name__ == "__main__":
    main()

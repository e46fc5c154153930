"""Stage `finetune`: train a classifier on the labeled images, early stopping on val.

`python -m catdog.stages.finetune simclr` starts from the SimCLR encoder
(models/pretrain.pt); `simclr_imagenet` from SimCLR continued from ImageNet
(models/pretrain_imagenet.pt); `scratch` from random init; `imagenet` from
torchvision's ImageNet weights. The head is always new. Writes models/<method>.pt and
models/<method>.json (epochs to converge, epochs run, training seconds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from catdog import CLASSES
from catdog.augment import train_view
from catdog.cache import load_split, split_path
from catdog.models import FEATURE_DIM, imagenet_student, load_model, student
from catdog.params import load_or_exit
from catdog.stage_time import StageClock
from catdog.supervised import make_optimizer, train_student
from catdog.train_loop import autocast, batches, optimize, prepare_model, progress, stage_setup

INITS = ("simclr", "simclr_imagenet", "scratch", "imagenet")
BACKBONE_LR_READERS = ("simclr",)  # the methods that read finetune.backbone_lr (dvc.yaml: `own`)
PRETRAINED = {"simclr": Path("models/pretrain.pt"), "simclr_imagenet": Path("models/pretrain_imagenet.pt")}


def initial_model(init: str, stem_stride: int = 2) -> nn.Module:
    """The starting network for `init`, with a fresh Cat/Dog head; a pretrained encoder keeps the
    stem stride it was pretrained with, a new network gets `stem_stride`."""
    if init in PRETRAINED:
        net, _ = load_model(PRETRAINED[init])
        net.classifier[-1] = nn.Linear(FEATURE_DIM, len(CLASSES))
        return net
    return (imagenet_student(stem_stride=stem_stride) if init == "imagenet"
            else student(stem_stride=stem_stride))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("init", choices=INITS, help="starting weights")
    method = parser.parse_args(argv).init
    clock = StageClock(f"finetune-{method}")
    params = load_or_exit()
    cfg, device, seed, generator = stage_setup(params, "finetune")
    if method not in BACKBONE_LR_READERS:  # not a dependency of this method's stage in dvc.yaml
        cfg = {k: v for k, v in cfg.items() if k != "backbone_lr"}
    labeled, val = load_split("labeled"), load_split("val")
    images, labels = labeled.images.to(device), labeled.labels.to(device)
    net = prepare_model(initial_model(method, params["student"]["stem_stride"]), device)
    # SimCLR's backbone may learn slower than the new head (near a linear probe). ImageNet's (and
    # SimCLR continued from it) learns at the head's rate: on the cpu profile's val its accuracy
    # rose with the backbone's LR up to the head's (results/tuning/finetune/imagenet.png); from
    # random init nothing is kept.
    scale = cfg["backbone_lr"] if method in BACKBONE_LR_READERS else 1.0
    optimizer, scheduler = make_optimizer(net, cfg, len(labeled), backbone_lr_scale=scale)

    def train_epoch(epoch: int) -> dict[str, float]:
        total = torch.zeros((), device=device)
        order = batches(len(labeled), cfg["batch_size"], generator)
        for idx in progress(order, f"{method} {epoch}"):
            x = train_view(images[idx], cfg["image_size"], generator)
            with autocast(device):
                logits = net(x.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits.float(), labels[idx])
            optimize(loss, optimizer, scheduler)
            total += loss.detach()
        return {"train/loss": (total / len(order)).item()}

    inputs = [split_path("labeled"), split_path("val")]
    inputs += [PRETRAINED[method]] if method in PRETRAINED else []
    result = train_student(net, optimizer, scheduler, generator, train_epoch, val, {**cfg, "seed": seed},
                           device, stage="finetune", method=method, init=method, inputs=inputs,
                           checkpoint_every=params["compute"]["checkpoint_every"])
    clock.save(carried=result.resumed_seconds)


if __name__ == "__main__":
    main()

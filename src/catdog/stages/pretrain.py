"""Stage `pretrain`: SimCLR on the unlabeled pool (MobileNetV2 from random init).

Two GPU-batched augmented views per image (catdog.augment.simclr_views), lightly's
SimCLRProjectionHead and NTXentLoss, SGD with warm-up + cosine schedule. The monitor is
a kNN accuracy on val with the labeled images as memory. Writes the encoder (a full
student model file whose classifier is unused) to models/pretrain.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from catdog.atomic import save_json
from catdog.augment import eval_view, simclr_views
from catdog.cache import load_split, split_path
from catdog.knn import knn_accuracy
from catdog.models import FEATURE_DIM, encoder, save_model, student
from catdog.params import load_or_exit
from catdog.stage_time import StageClock
from catdog.train_loop import (
    autocast,
    batches,
    cosine_with_warmup,
    fingerprint,
    optimize,
    prepare_model,
    progress,
    stage_setup,
    steps_per_epoch,
    train,
)

MODEL_FILE = Path("models/pretrain.pt")
INFO_FILE = Path("models/pretrain.json")
CHECKPOINT = Path("checkpoints/pretrain.pt")
LIVE_DIR = Path("dvclive/pretrain")


@torch.inference_mode()
def embed(backbone: nn.Module, images: torch.Tensor, size: int, device: torch.device,
          batch_size: int = 256) -> torch.Tensor:
    """Pooled features of whole (uint8) images, in batches."""
    out = []
    for start in range(0, len(images), batch_size):
        x = eval_view(images[start:start + batch_size].to(device), size)
        with autocast(device):
            out.append(backbone(x).float())
    return torch.cat(out)


def simclr_loss(backbone: nn.Module, head: nn.Module, criterion: nn.Module, batch: torch.Tensor,
                size: int, generator: torch.Generator, **view: float) -> torch.Tensor:
    """NT-Xent loss of one uint8 batch: two augmented views (`view`: simclr_views options such as
    jitter and min_scale), encoded and projected."""
    x0 = simclr_views(batch, size, generator, **view).contiguous(memory_format=torch.channels_last)
    x1 = simclr_views(batch, size, generator, **view).contiguous(memory_format=torch.channels_last)
    with autocast(batch.device):
        z0, z1 = head(backbone(x0)), head(backbone(x1))
    return criterion(z0.float(), z1.float())


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("pretrain")
    params = load_or_exit()
    cfg, device, seed, generator = stage_setup(params, "pretrain")
    pool, labeled, val = (load_split(name) for name in ("pool", "labeled", "val"))
    if len(pool) < 2:
        raise SystemExit("error: SimCLR needs at least 2 pool images")
    images = pool.images.to(device)

    net = student()
    backbone = encoder(net)
    head = SimCLRProjectionHead(FEATURE_DIM, FEATURE_DIM, cfg["proj_dim"])
    model = prepare_model(nn.ModuleDict({"backbone": backbone, "head": head}), device)
    criterion = NTXentLoss(temperature=cfg["temperature"])  # normalised-temperature cross entropy
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9,
                                weight_decay=cfg["weight_decay"])
    steps = steps_per_epoch(len(pool), cfg["batch_size"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(cfg["epochs"] * steps, cfg["warmup_epochs"] * steps))
    size = cfg["image_size"]

    def train_epoch(epoch: int) -> dict[str, float]:
        total = torch.zeros((), device=device)
        order = batches(len(pool), cfg["batch_size"], generator)
        for idx in progress(order, f"simclr {epoch}"):
            loss = simclr_loss(backbone, head, criterion, images[idx], size, generator,
                               jitter=cfg["jitter"], min_scale=cfg["min_scale"])
            optimize(loss, optimizer, scheduler)
            total += loss.detach()
        return {"train/loss": (total / len(order)).item()}

    def validate(epoch: int) -> dict[str, float]:
        bank = embed(backbone, labeled.images, size, device)
        query = embed(backbone, val.images, size, device)
        return {"val/knn_acc": knn_accuracy(bank, labeled.labels, query, val.labels, cfg["knn_k"])}

    inputs = [split_path(n) for n in ("pool", "labeled", "val")]
    result = train(model, optimizer, scheduler, generator, train_epoch, validate,
                   epochs=cfg["epochs"], monitor="val/knn_acc", checkpoint=CHECKPOINT,
                   live_dir=LIVE_DIR, run_id=fingerprint({**cfg, "seed": seed}, inputs), keep="last")
    save_model(MODEL_FILE, net, method="simclr-pretrain", image_size=size)
    save_json(INFO_FILE, result.info() | {"best_knn_acc": result.best_value})
    print(f"pretrain: {result.epochs_run} epochs, {result.seconds:.0f}s, final val kNN acc "
          f"{result.history[-1]['val/knn_acc']:.3f}", file=sys.stderr)
    clock.save(carried=result.resumed_seconds)


if __name__ == "__main__":
    main()

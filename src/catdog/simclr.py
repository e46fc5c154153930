"""SimCLR: the NT-Xent loss of a batch's two augmented views, pooled features of whole images,
and the pretraining run that the pretrain stages (from random init, from ImageNet) share.

`pretrain` trains an encoder on the unlabeled pool: two batched augmented views per image
(catdog.augment.simclr_views), lightly's SimCLRProjectionHead and NTXentLoss, SGD with warm-up
+ cosine schedule. The monitor is a kNN accuracy on val with the labeled images as memory; every
`probe_every` epochs (and after the last) the representation score (catdog.representation:
linear probe on val, agreement with the teacher on the heldout images). It writes
models/<stem>.pt (a full student model file whose classifier is unused), models/<stem>.json and
metrics/representation/<method>.json; checkpoints/<stem>.pt resumes it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from catdog import representation
from catdog.atomic import save_json
from catdog.augment import eval_view, simclr_views
from catdog.cache import HELDOUT_FILE, load_split, split_path
from catdog.device import fused
from catdog.knn import knn_accuracy
from catdog.models import FEATURE_DIM, encoder, save_model
from catdog.precision import autocast
from catdog.train_loop import (
    Result,
    batches,
    cosine_with_warmup,
    fingerprint,
    optimize,
    prepare_model,
    progress,
    steps_per_epoch,
    train,
)

SCORE_DIR = Path("metrics/representation")


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


def pretrain(net: nn.Module, cfg: dict, device: torch.device, seed: int, generator: torch.Generator,
             method: str, stem: str, checkpoint_every: int = 1) -> Result:
    """SimCLR on the pool from `net`'s weights, with the recipe `cfg` (the params a pretrain stage
    reads); resumable, scored as it goes; writes the files named in the module docstring."""
    pool, labeled, val = (load_split(name) for name in ("pool", "labeled", "val"))
    held = load_split(HELDOUT_FILE)
    if len(pool) < 2:
        raise SystemExit("error: SimCLR needs at least 2 pool images")
    images = pool.images.to(device)
    # the monitor's images, moved to the device once (not every epoch)
    lab_images, val_images, held_images = (s.images.to(device) for s in (labeled, val, held))

    backbone = encoder(net)
    head = SimCLRProjectionHead(FEATURE_DIM, FEATURE_DIM, cfg["proj_dim"])
    model = prepare_model(nn.ModuleDict({"backbone": backbone, "head": head}), device)
    criterion = nt_xent(cfg["temperature"], device)  # normalised-temperature cross entropy
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9,
                                weight_decay=cfg["weight_decay"], **fused(model.parameters()))
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
        bank = embed(backbone, lab_images, size, device).cpu()
        query = embed(backbone, val_images, size, device).cpu()
        row = {"val/knn_acc": knn_accuracy(bank, labeled.labels, query, val.labels, cfg["knn_k"])}
        if epoch % cfg["probe_every"] == 0 or epoch == cfg["epochs"]:
            held_x = embed(backbone, held_images, size, device).cpu()
            got = representation.score((bank, labeled.labels), (query, val.labels),
                                       (held_x, held.labels), cfg["knn_k"])
            row |= {"val/probe_acc": got["probe_val"], "heldout/probe_agree": got["probe_agree"]}
        return row

    inputs = [split_path(n) for n in ("pool", "labeled", "val")] + [HELDOUT_FILE]
    result = train(model, optimizer, scheduler, generator, train_epoch, validate,
                   epochs=cfg["epochs"], monitor="val/knn_acc", checkpoint=Path(f"checkpoints/{stem}.pt"),
                   live_dir=Path(f"dvclive/{stem}"), run_id=fingerprint({**cfg, "seed": seed}, inputs),
                   keep="last", checkpoint_every=checkpoint_every)
    save_model(Path(f"models/{stem}.pt"), net, method=f"{method}-pretrain", image_size=size)
    save_json(Path(f"models/{stem}.json"), result.info() | {"best_knn_acc": result.best_value})
    last = result.history[-1]
    save_json(SCORE_DIR / f"{method}.json", {
        "probe_val": last["val/probe_acc"], "probe_agree": last["heldout/probe_agree"],
        "knn_val": last["val/knn_acc"], "epochs": result.epochs_run})
    print(f"{stem}: {result.epochs_run} epochs, {result.seconds:.0f}s; final val kNN "
          f"{last['val/knn_acc']:.3f}, linear probe val {last['val/probe_acc']:.3f}, agreement with "
          f"the teacher {last['heldout/probe_agree']:.3f}", file=sys.stderr)
    return result


class SyncFreeNTXent(nn.Module):
    """NT-Xent (SimCLR's normalised-temperature cross entropy) with in-batch negatives, equal to
    lightly's NTXentLoss without a memory bank, but with no host-device sync: the self-similarity
    diagonal is masked to -inf in place (masked_fill) instead of dropped by boolean indexing, so
    the logits keep a static shape. Used on CUDA; the CPU keeps lightly's loss (bit-identical
    results with earlier runs)."""

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = temperature

    def forward(self, out0: torch.Tensor, out1: torch.Tensor) -> torch.Tensor:
        n = out0.shape[0]
        z = nn.functional.normalize(torch.cat([out0, out1]), dim=1)  # [2n, d]: view 0, then view 1
        logits = (z @ z.T) / self.temperature
        self_pair = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_pair, float("-inf"))
        index = torch.arange(2 * n, device=z.device)
        positive = (index + n) % (2 * n)  # each view's pair is the other view of its image
        return nn.functional.cross_entropy(logits, positive)


def nt_xent(temperature: float, device: torch.device) -> nn.Module:
    """The NT-Xent loss for `device`: the sync-free one on CUDA, lightly's elsewhere."""
    return SyncFreeNTXent(temperature) if device.type == "cuda" else NTXentLoss(temperature=temperature)

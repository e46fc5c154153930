"""What fine-tuning and distillation share: the optimizer, val scoring, and the training run
from first epoch to saved model (models/<method>.pt and models/<method>.json)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from catdog.atomic import save_json
from catdog.augment import eval_view
from catdog.bn_calibration import recalibrate_bn
from catdog.cache import HELDOUT_FILE, Split, load_split
from catdog.device import fused
from catdog.models import save_model
from catdog.train_loop import Result, autocast, cosine_with_warmup, fingerprint, steps_per_epoch, train

SGD_MOMENTUM = 0.9  # Nesterov momentum of the `sgd` optimizer
ONE_CYCLE_WARMUP = 0.3  # fraction of the `sgd` run spent raising the LR (torch's OneCycleLR default)


def param_groups(net: nn.Module, weight_decay: float, lr: float,
                 backbone_lr_scale: float = 1.0) -> list[dict]:
    """Weight decay on conv and linear weights only: BatchNorm scales and biases (the 1-d
    parameters) are left undecayed, as in most modern ImageNet recipes. The classifier head
    (`net.classifier`) learns at `lr`, the rest (the backbone) at `lr * backbone_lr_scale`:
    below 1 it keeps a pretrained encoder close to where it started while the new head fits."""
    head = {id(p) for p in getattr(net, "classifier", nn.Identity()).parameters()}
    groups = []
    for in_head in (False, True):
        rate = lr if in_head else lr * backbone_lr_scale
        mine = [p for p in net.parameters() if p.requires_grad and (id(p) in head) == in_head]
        for decayed in (True, False):
            chosen = [p for p in mine if (p.ndim > 1) == decayed]
            if chosen:  # no empty groups: OneCycleLR and AdamW want one LR per real group
                groups.append({"params": chosen, "weight_decay": weight_decay if decayed else 0.0,
                               "lr": rate, "name": "head" if in_head else "backbone"})
    return groups


def make_optimizer(net: nn.Module, cfg: dict, n_images: int, backbone_lr_scale: float = 1.0
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """cfg['optimizer']: `adamw` = AdamW with one epoch of linear warm-up, then cosine decay;
    `sgd` = SGD with Nesterov momentum and a one-cycle schedule (cosine up to cfg['lr'] over the
    first 30%, cosine down to ~0). Both step per batch over cfg['epochs']. The backbone's LR is
    `backbone_lr_scale` times the head's all along (see param_groups)."""
    steps = steps_per_epoch(n_images, cfg["batch_size"])
    total = cfg["epochs"] * steps
    groups = param_groups(net, cfg["weight_decay"], cfg["lr"], backbone_lr_scale)
    if cfg["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(groups, lr=cfg["lr"], momentum=SGD_MOMENTUM, nesterov=True,
                                    **fused(net.parameters()))
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in groups], total_steps=total, pct_start=ONE_CYCLE_WARMUP,
            cycle_momentum=False)
        return optimizer, scheduler
    optimizer = torch.optim.AdamW(groups, lr=cfg["lr"], **fused(net.parameters()))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(total, steps))
    return optimizer, scheduler


@torch.inference_mode()
def val_scores(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, size: int,
               device: torch.device, batch_size: int = 256) -> dict[str, float]:
    """Accuracy and mean cross-entropy on a (small) labeled split."""
    logits = []
    for start in range(0, len(images), batch_size):
        x = eval_view(images[start:start + batch_size].to(device), size)
        with autocast(device):
            logits.append(net(x.contiguous(memory_format=torch.channels_last)).float())
    logits = torch.cat(logits)
    labels = labels.to(device)
    acc = (logits.argmax(1) == labels).float().mean().item()
    loss = F.cross_entropy(logits, labels).item()
    # Accuracy on a few hundred images ties often: the loss breaks ties, never outweighs accuracy.
    return {"val/acc": acc, "val/loss": loss, "val/score": acc - 1e-3 * loss}


def train_student(net: nn.Module, optimizer: torch.optim.Optimizer,
                  scheduler: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator,
                  train_epoch: Callable[[int], dict[str, float]], val: Split, cfg: dict,
                  device: torch.device, *, stage: str, method: str, init: str,
                  inputs: list[Path], trained: nn.Module | None = None,
                  checkpoint_every: int = 1, calibration: torch.Tensor | None = None) -> Result:
    """Train with early stopping on val, then write models/<method>.pt and .json.

    `trained` is what the optimizer updates and the checkpoint holds, when it is more than `net`
    (e.g. net plus a distillation adapter); only `net` is scored and saved as the model.
    With cfg["bn_calibration"] > 0, that many of the `calibration` images (uint8, the training
    images) re-estimate the BN statistics at the val side before each val (catdog.bn_calibration)."""
    size = cfg["eval_size"] or cfg["image_size"]  # whole-image side at val (and test)
    n_calibration = cfg["bn_calibration"] if calibration is not None else 0

    def validate(epoch: int) -> dict[str, float]:
        if n_calibration:
            recalibrate_bn(net, calibration, size, n_calibration, seed=cfg.get("seed", 0) * 100_003 + epoch,
                           device=device)
        return val_scores(net, val.images, val.labels, size, device)

    result = train(trained if trained is not None else net, optimizer, scheduler, generator, train_epoch,
                   validate,
                   epochs=cfg["epochs"], monitor="val/score", patience=cfg["patience"],
                   checkpoint=Path(f"checkpoints/{stage}-{method}.pt"),
                   live_dir=Path(f"dvclive/{stage}-{method}"),
                   run_id=fingerprint({**cfg, "init": init}, inputs), checkpoint_every=checkpoint_every)
    save_model(Path(f"models/{method}.pt"), net, method=method, image_size=size)
    best = result.history[result.best_epoch - 1]
    # val_accuracy: what tuning compares (never test); eval_size: the side val and test see.
    info = result.info() | {"val_accuracy": best["val/acc"], "eval_size": size}
    # heldout_agree: agreement with the teacher on the heldout stage's unlabeled images, which no
    # pool holds: a tenth of val's noise, no label and no test image needed.
    if HELDOUT_FILE.is_file():
        held = load_split(HELDOUT_FILE)
        info["heldout_agree"] = val_scores(net, held.images, held.labels, size, device)["val/acc"]
    else:
        print(f"{stage} {method}: {HELDOUT_FILE} not found, no heldout_agree", file=sys.stderr)
    save_json(Path(f"models/{method}.json"), info)
    print(f"{stage} {method}: best val acc {best['val/acc']:.3f} at epoch {result.best_epoch} "
          f"of {result.epochs_run} ({result.seconds:.0f}s)", file=sys.stderr)
    return result

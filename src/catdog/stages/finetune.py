"""Stage `finetune`: train a classifier on the labeled images, early stopping on val.

`python -m catdog.stages.finetune simclr` starts from the SimCLR encoder
(models/pretrain.pt); `scratch` from random init; `imagenet` from torchvision's
ImageNet weights. The head is always new. Writes models/<method>.pt and
models/<method>.json (epochs to converge, epochs run, training seconds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from catdog import CLASSES
from catdog.atomic import save_json
from catdog.augment import eval_view, train_view
from catdog.cache import load_split, split_path
from catdog.device import pick_device
from catdog.models import FEATURE_DIM, imagenet_student, load_model, save_model, student
from catdog.params import load_or_exit
from catdog.train_loop import (
    autocast,
    batches,
    cosine_with_warmup,
    fingerprint,
    prepare_model,
    progress,
    seed_everything,
    train,
)

INITS = ("simclr", "scratch", "imagenet")
PRETRAINED = Path("models/pretrain.pt")


def initial_model(init: str) -> nn.Module:
    """The starting network for `init`, with a fresh Cat/Dog head."""
    if init == "simclr":
        net, _ = load_model(PRETRAINED)
        net.classifier[-1] = nn.Linear(FEATURE_DIM, len(CLASSES))
        return net
    return imagenet_student() if init == "imagenet" else student()


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("init", choices=INITS, help="starting weights")
    args = parser.parse_args(argv)
    method = args.init
    params = load_or_exit()
    cfg, compute = params["finetune"], params["compute"]
    device = pick_device(compute["device"], compute["threads"])
    generator = seed_everything(cfg["seed"], device)
    labeled, val = load_split("labeled"), load_split("val")
    images, labels = labeled.images.to(device), labeled.labels.to(device)

    net = prepare_model(initial_model(method), device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps = len(batches(len(labeled), cfg["batch_size"], torch.Generator(device)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(cfg["epochs"] * steps, steps))
    size = cfg["image_size"]

    def train_epoch(epoch: int) -> dict[str, float]:
        total = torch.zeros((), device=device)
        order = batches(len(labeled), cfg["batch_size"], generator)
        for idx in progress(order, f"{method} {epoch}"):
            x = train_view(images[idx], size, generator)
            with autocast(device):
                logits = net(x.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits.float(), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach()
        return {"train/loss": (total / len(order)).item()}

    def validate(epoch: int) -> dict[str, float]:
        return val_scores(net, val.images, val.labels, size, device)

    inputs = [split_path("labeled"), split_path("val")] + ([PRETRAINED] if method == "simclr" else [])
    result = train(net, optimizer, scheduler, generator, train_epoch, validate,
                   epochs=cfg["epochs"], monitor="val/score", patience=cfg["patience"],
                   checkpoint=Path(f"checkpoints/finetune-{method}.pt"),
                   live_dir=Path(f"dvclive/finetune-{method}"),
                   run_id=fingerprint({**cfg, "init": method}, inputs))
    save_model(Path(f"models/{method}.pt"), net, method=method, image_size=size)
    save_json(Path(f"models/{method}.json"), result.info())
    best = result.history[result.best_epoch - 1]
    print(f"finetune {method}: best val acc {best['val/acc']:.3f} at epoch {result.best_epoch} "
          f"of {result.epochs_run} ({result.seconds:.0f}s)", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Probe a training recipe outside DVC, for tuning: KD or SimCLR + fine-tune, with the stages' own
loss and augmentation code, scored without the test split.

Scores every few epochs, at several whole-image sides:
- `val`: the 180 labeled val images (what the pipeline early-stops on; one standard error ~0.035);
- `agree`: agreement with the teacher on 2,000 unlabeled images that no pool of up to 10k holds
  (pool ranks 10,000-11,999; the teacher is 98 % accurate, so this tracks accuracy at a tenth of
  val's noise, and it needs no label).

Run from the repository root after `dvc repro teacher_logits pool heldout` (pool of 10k, teacher
fitted, held-out images labeled), e.g. in a fresh clone with the cpu profile's data params:
    python scripts/recipe_probe.py kd --n 10000 --epochs 40 --lr 0.2
    python scripts/recipe_probe.py simclr --n 3000 --epochs 20 --temperature 0.5 --min-scale 0.2
    python scripts/recipe_probe.py simclr --start imagenet --epochs 10 --lr 0.03 --skip-random
Prints one line per scored epoch. Used for results/cpu/tuning.md.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from catdog import logistic_head, representation
from catdog.augment import eval_view, train_view
from catdog.cache import HELDOUT_FILE, load_split
from catdog.distillation import distill_loss
from catdog.knn import knn_accuracy
from catdog.models import FEATURE_DIM, encoder, imagenet_student, load_model, student
from catdog.simclr import embed, simclr_loss
from catdog.supervised import make_optimizer
from catdog.teachers import LOGITS_FILE, load_logits
from catdog.train_loop import (
    batches,
    cosine_with_warmup,
    optimize,
    prepare_model,
    seed_everything,
    steps_per_epoch,
)

SIZES = (64, 80, 96)  # whole-image sides scored
DEVICE = torch.device("cpu")


def held_out(path: Path) -> dict[str, torch.Tensor]:
    """The heldout stage's images and the teacher's labels of them."""
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: run `dvc repro heldout` first (it needs the "
                         "teacher and the prepared index)")
    held = load_split(path)
    return {"images": held.images, "teacher": held.labels}


@torch.inference_mode()
def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, size: int) -> float:
    net.eval()
    logits = [net(eval_view(images[i:i + 256], size).contiguous(memory_format=torch.channels_last))
              for i in range(0, len(images), 256)]
    return (torch.cat(logits).argmax(1) == labels).float().mean().item()


def scores(net: nn.Module, val, held: dict) -> str:
    return " ".join(f"{s}px val {accuracy(net, val.images, val.labels, s):.3f} "
                    f"agree {accuracy(net, held['images'], held['teacher'], s):.3f}" for s in SIZES)


def probe_kd(args: argparse.Namespace, held: dict) -> None:
    pool, labeled, val = (load_split(n) for n in ("pool", "labeled", "val"))
    n = min(args.n, len(pool))
    images = torch.cat([labeled.images, pool.images[:n]])
    labels = torch.cat([labeled.labels, torch.full((n,), -1)])
    soft = load_logits(LOGITS_FILE, labeled.files + pool.files[:n])
    generator = seed_everything(args.seed, DEVICE)
    net = prepare_model(student(), DEVICE)
    cfg = {"epochs": args.epochs, "lr": args.lr, "optimizer": args.optimizer,
           "weight_decay": args.weight_decay, "batch_size": args.batch_size,
           "temperature": args.temperature, "alpha": args.alpha, "image_size": args.size,
           "label_smoothing": args.label_smoothing}
    optimizer, scheduler = make_optimizer(net, cfg, len(images))
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        net.train()
        for idx in batches(len(images), args.batch_size, generator):
            loss = distill_loss(net, None, images[idx], labels[idx], soft[idx], cfg,
                                              generator)
            optimize(loss, optimizer, scheduler)
        if epoch % args.every == 0 or epoch == args.epochs:
            print(f"kd epoch {epoch} ({time.time() - start:.0f}s): {scores(net, val, held)}",
                  flush=True)


def probe_head(net: nn.Module, labeled, val, held: dict) -> tuple[nn.Linear, str]:
    """A linear probe of `net`'s frozen encoder on whole images at 80 px (the representation
    score: catdog.representation), as a two-class linear head, and its scores."""
    backbone = encoder(net)

    def features(split_images: torch.Tensor) -> torch.Tensor:
        return embed(backbone, split_images, 80, DEVICE)

    lab_x = features(labeled.images)
    scaler, lr = logistic_head.fit_logistic(lab_x.double().numpy(), labeled.labels.numpy())
    got = representation.score((lab_x, labeled.labels), (features(val.images), val.labels),
                               (features(held["images"]), held["teacher"]))
    return (logistic_head.linear_head(scaler, lr),
            f"val {got['probe_val']:.3f}, agree {got['probe_agree']:.3f}, kNN val {got['knn_val']:.3f}")


def finetune(init: dict, labeled, val, held: dict, epochs: int, seed: int,
             backbone_lr: float = 1.0, probe_init: bool = False) -> str:
    """The finetune stage's default recipe (AdamW 1e-3, wd 0.05, 64 px crops) from `init`, the
    backbone at `backbone_lr` times the head's LR; with `probe_init`, the head starts from a
    linear probe of the frozen encoder (LP-FT, Kumar et al. 2022) instead of random."""
    net = student()
    net.load_state_dict(init)
    net.classifier[-1] = nn.Linear(FEATURE_DIM, 2)
    if probe_init:
        net.classifier[-1] = probe_head(net, labeled, val, held)[0]
    net = prepare_model(net, DEVICE)
    generator = seed_everything(seed, DEVICE)
    cfg = {"epochs": epochs, "lr": 1e-3, "weight_decay": 0.05, "optimizer": "adamw", "batch_size": 64}
    optimizer, scheduler = make_optimizer(net, cfg, len(labeled), backbone_lr_scale=backbone_lr)
    best = (accuracy(net, val.images, val.labels, 80), copy.deepcopy(net.state_dict()))
    for epoch in range(1, epochs + 1):
        net.train()
        for idx in batches(len(labeled), 64, generator):
            x = train_view(labeled.images[idx], 64, generator)
            loss = F.cross_entropy(net(x.contiguous(memory_format=torch.channels_last)).float(),
                                   labeled.labels[idx])
            optimize(loss, optimizer, scheduler)
        if epoch % 5 == 0 and (acc := accuracy(net, val.images, val.labels, 80)) >= best[0]:
            best = (acc, copy.deepcopy(net.state_dict()))
    net.load_state_dict(best[1])
    return f"best val {best[0]:.3f}, agree {accuracy(net, held['images'], held['teacher'], 80):.3f}"


def probe_simclr(args: argparse.Namespace, held: dict) -> None:
    pool, labeled, val = (load_split(n) for n in ("pool", "labeled", "val"))
    if args.init:  # an encoder pretrained already (e.g. the pretrain stage's models/pretrain.pt)
        net, _ = load_model(args.init)
        finetunes(args, net, labeled, val, held)
        return
    images = pool.images[:args.n]
    generator = seed_everything(args.seed, DEVICE)
    net = imagenet_student() if args.start == "imagenet" else student()
    backbone = encoder(net)
    head = SimCLRProjectionHead(FEATURE_DIM, FEATURE_DIM, 128)
    model = prepare_model(nn.ModuleDict({"backbone": backbone, "head": head}), DEVICE)
    criterion = NTXentLoss(temperature=args.temperature)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    steps = steps_per_epoch(len(images), args.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(args.epochs * steps, args.warmup_epochs * steps))
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        for idx in batches(len(images), args.batch_size, generator):
            loss = simclr_loss(backbone, head, criterion, images[idx], args.size, generator,
                               jitter=args.jitter, min_scale=args.min_scale)
            optimize(loss, optimizer, scheduler)
        model.eval()
        knn = knn_accuracy(embed(backbone, labeled.images, args.size, DEVICE), labeled.labels,
                           embed(backbone, val.images, args.size, DEVICE), val.labels, 20)
        print(f"simclr epoch {epoch} ({time.time() - start:.0f}s): val kNN {knn:.3f}", flush=True)
        if epoch % args.every == 0 and epoch < args.epochs:
            print(f"linear probe at epoch {epoch}: {probe_head(net, labeled, val, held)[1]}",
                  flush=True)
        if epoch in args.finetune_at and epoch < args.epochs:
            tuned = finetune(copy.deepcopy(net.state_dict()), labeled, val, held, 60, args.seed,
                             args.backbone_lr)
            print(f"fine-tune at epoch {epoch} (backbone LR x{args.backbone_lr:g}): {tuned}", flush=True)
    finetunes(args, net, labeled, val, held)


def finetunes(args: argparse.Namespace, net: nn.Module, labeled, val, held: dict) -> None:
    """Score a pretrained encoder: linear probe, fine-tune (new head or, with --probe-init, the
    probe's head), and the same for the encoder SimCLR started from (random init or ImageNet)."""
    print(f"linear probe: {probe_head(net, labeled, val, held)[1]}", flush=True)
    runs = [("SimCLR", net.state_dict(), args.backbone_lr, args.probe_init)]
    if not args.skip_random:
        start = imagenet_student() if args.start == "imagenet" else student()
        if args.start == "imagenet":
            print(f"linear probe of the ImageNet encoder: {probe_head(start, labeled, val, held)[1]}",
                  flush=True)
        runs.append((f"{args.start} init", start.state_dict(), 1.0, False))
    for name, init, scale, probe_init in runs:
        head = "probe head" if probe_init else "new head"
        print(f"fine-tune from {name} (backbone LR x{scale:g}, {head}): "
              f"{finetune(copy.deepcopy(init), labeled, val, held, 60, args.seed, scale, probe_init)}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=("kd", "simclr"))
    parser.add_argument("--n", type=int, default=3000, help="pool images (the first n ranks)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=None, help="peak LR (kd 0.2, simclr 0.3)")
    parser.add_argument("--optimizer", default="sgd", choices=("sgd", "adamw"), help="kd only")
    parser.add_argument("--weight-decay", type=float, default=5e-5, help="kd only")
    parser.add_argument("--batch-size", type=int, default=None, help="kd 128, simclr 256")
    parser.add_argument("--temperature", type=float, default=None, help="kd T 4, NT-Xent 0.2")
    parser.add_argument("--alpha", type=float, default=0.9, help="kd only")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="kd only: of the hard term")
    parser.add_argument("--backbone-lr", type=float, default=1.0,
                        help="simclr only: the fine-tune's backbone LR as a fraction of the head's")
    parser.add_argument("--init", type=Path, default=None,
                        help="simclr only: score this pretrained encoder instead of pretraining one")
    parser.add_argument("--probe-init", action="store_true",
                        help="simclr only: fine-tune from the linear probe's head (LP-FT)")
    parser.add_argument("--skip-random", action="store_true",
                        help="simclr only: skip scoring the encoder SimCLR started from (--start)")
    parser.add_argument("--start", default="random", choices=("random", "imagenet"),
                        help="simclr only: the encoder SimCLR starts from")
    parser.add_argument("--warmup-epochs", type=int, default=1, help="simclr only")
    parser.add_argument("--finetune-at", type=lambda t: {int(e) for e in t.split(",")}, default=set(),
                        help="simclr only: also fine-tune after these epochs (comma-separated)")
    parser.add_argument("--size", type=int, default=64, help="training crop side")
    parser.add_argument("--min-scale", type=float, default=0.08, help="simclr only")
    parser.add_argument("--jitter", type=float, default=0.8, help="simclr only")
    parser.add_argument("--every", type=int, default=5,
                        help="kd: score every this many epochs; simclr: linear probe every this many")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held", type=Path, default=HELDOUT_FILE, help="the heldout stage's output")
    args = parser.parse_args()
    kd = args.recipe == "kd"
    args.lr = args.lr if args.lr is not None else (0.2 if kd else 0.3)
    args.batch_size = args.batch_size or (128 if kd else 256)
    args.temperature = args.temperature if args.temperature is not None else (4.0 if kd else 0.2)
    torch.set_num_threads(2)
    (probe_kd if kd else probe_simclr)(args, held_out(args.held))


if __name__ == "__main__":
    main()

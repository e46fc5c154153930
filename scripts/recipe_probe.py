"""Probe a training recipe outside DVC, for tuning: KD or SimCLR + fine-tune, with the stages' own
loss and augmentation code, scored without the test split.

Scores every few epochs, at several whole-image sides:
- `val`: the 180 labeled val images (what the pipeline early-stops on; one standard error ~0.035);
- `agree`: agreement with the teacher on 2,000 unlabeled images that no pool of up to 10k holds
  (pool ranks 10,000-11,999; the teacher is 98 % accurate, so this tracks accuracy at a tenth of
  val's noise, and it needs no label). The images and teacher logits are cached in --held.

Run from the repository root after `dvc repro teacher_logits pool` (pool of 10k, teacher fitted):
    python scripts/recipe_probe.py kd --n 10000 --epochs 40 --lr 0.2
    python scripts/recipe_probe.py simclr --n 3000 --epochs 20 --temperature 0.5 --min-scale 0.2
Prints one line per scored epoch. Used for results/cpu/tuning.md.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from sklearn.linear_model import LogisticRegression
from torch import nn

import catdog.stages.distill as distill_stage
from catdog.augment import eval_view, train_view
from catdog.cache import INDEX_FILE, RAW_IMAGES, load_split
from catdog.decode_splits import decode_many
from catdog.knn import knn_accuracy
from catdog.models import FEATURE_DIM, encoder, load_model, student
from catdog.precision import set_bf16
from catdog.stages.pretrain import embed, simclr_loss
from catdog.supervised import make_optimizer
from catdog.teachers import LOGITS_FILE, TEACHER_FILE, batched, load_logits, load_teacher
from catdog.train_loop import (
    batches,
    cosine_with_warmup,
    optimize,
    prepare_model,
    seed_everything,
    steps_per_epoch,
)

HELD_RANKS = (10_000, 12_000)  # pool ranks outside every pool of up to data.max_size = 10k
SIZES = (64, 80, 96)  # whole-image sides scored
DEVICE = torch.device("cpu")


def held_out(path: Path) -> dict[str, torch.Tensor]:
    """Unused unlabeled images and the teacher's logits of them (cached in `path`)."""
    if not path.is_file():
        index = pd.read_csv(INDEX_FILE)
        rows = index[(index["split"] == "pool") & index["rank"].between(*HELD_RANKS, inclusive="left")]
        images = decode_many(RAW_IMAGES.parent, rows.sort_values("rank")["file"].tolist(), 180, "held")
        teacher = load_teacher(TEACHER_FILE, DEVICE)
        set_bf16(DEVICE, True)  # as the teacher_logits stage picks on AVX512-BF16 CPUs
        logits = batched(teacher, images, 64, desc="teacher held-out")
        set_bf16(DEVICE, False)
        torch.save({"images": images, "teacher": logits.argmax(1)}, path)
    return torch.load(path)


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
            loss = distill_stage.distill_loss(net, None, images[idx], labels[idx], soft[idx], cfg,
                                              generator)
            optimize(loss, optimizer, scheduler)
        if epoch % args.every == 0 or epoch == args.epochs:
            print(f"kd epoch {epoch} ({time.time() - start:.0f}s): {scores(net, val, held)}",
                  flush=True)


def probe_head(net: nn.Module, labeled, val, held: dict) -> tuple[nn.Linear, str]:
    """A linear probe of `net`'s frozen encoder (logistic regression on whole images at 80 px),
    as a two-class linear head, and its val / agree scores."""
    backbone = encoder(net)

    def features(split_images: torch.Tensor):
        return embed(backbone, split_images, 80, DEVICE).numpy()

    probe = LogisticRegression(C=0.1, max_iter=3000).fit(features(labeled.images), labeled.labels)
    head = nn.Linear(FEATURE_DIM, 2)
    with torch.no_grad():  # softmax over (-z/2, z/2) is the probe's sigmoid of z
        w, b = torch.tensor(probe.coef_[0]).float() / 2, float(probe.intercept_[0]) / 2
        head.weight.copy_(torch.stack([-w, w]))
        head.bias.copy_(torch.tensor([-b, b]))
    return head, (f"val {probe.score(features(val.images), val.labels):.3f}, "
                  f"agree {probe.score(features(held['images']), held['teacher']):.3f}")


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
    net = student()
    backbone = encoder(net)
    head = SimCLRProjectionHead(FEATURE_DIM, FEATURE_DIM, 128)
    model = prepare_model(nn.ModuleDict({"backbone": backbone, "head": head}), DEVICE)
    criterion = NTXentLoss(temperature=args.temperature)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    steps = steps_per_epoch(len(images), args.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(args.epochs * steps, steps))
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
    finetunes(args, net, labeled, val, held)


def finetunes(args: argparse.Namespace, net: nn.Module, labeled, val, held: dict) -> None:
    """Score a pretrained encoder: linear probe, fine-tune (new head or, with --probe-init, the
    probe's head), and fine-tune from random init for comparison."""
    print(f"linear probe: {probe_head(net, labeled, val, held)[1]}", flush=True)
    runs = [("SimCLR", net.state_dict(), args.backbone_lr, args.probe_init)]
    if not args.skip_random:
        runs.append(("random init", student().state_dict(), 1.0, False))
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
                        help="simclr only: skip the fine-tune from random init")
    parser.add_argument("--size", type=int, default=64, help="training crop side")
    parser.add_argument("--min-scale", type=float, default=0.08, help="simclr only")
    parser.add_argument("--jitter", type=float, default=0.8, help="simclr only")
    parser.add_argument("--every", type=int, default=5,
                        help="kd: score every this many epochs; simclr: linear probe every this many")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held", type=Path, default=Path("data/probe/heldout.pt"))
    args = parser.parse_args()
    kd = args.recipe == "kd"
    args.lr = args.lr if args.lr is not None else (0.2 if kd else 0.3)
    args.batch_size = args.batch_size or (128 if kd else 256)
    args.temperature = args.temperature if args.temperature is not None else (4.0 if kd else 0.2)
    torch.set_num_threads(2)
    (probe_kd if kd else probe_simclr)(args, held_out(args.held))


if __name__ == "__main__":
    main()

"""Batch-norm statistics re-estimated at the side val and test see.

A student that trains on small random crops (64 px) and is scored on whole images at a larger
side (96 px) keeps running statistics of the crops. Late in a long schedule they can stop
describing the whole images: a 10k KD run on an Intel Xeon fell from val 0.97 to 0.56 while its
training loss kept falling, and the same weights scored 0.95 once its statistics were
re-estimated on 256 whole training images (results/tuning/bn-calibration). Re-estimating them
before each val (Touvron et al., "Fixing the train-test resolution discrepancy", NeurIPS 2019,
do the same by fine-tuning at the test side) costs a forward pass over a few hundred images and
leaves training untouched: only the BN buffers change, from their own generator, never the
training one.
"""

from __future__ import annotations

import torch
from torch import nn

from catdog.augment import eval_view
from catdog.precision import autocast


@torch.no_grad()
def recalibrate_bn(net: nn.Module, images: torch.Tensor, size: int, n_images: int, seed: int,
                   device: torch.device, batch_size: int = 128) -> None:
    """Reset every BatchNorm layer's running mean and variance to their plain average over
    `n_images` images drawn (by `seed`) from `images` (uint8), each whole at `size` px.

    Dropout and every other layer stay in eval mode; the net is left in eval mode."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or n_images <= 0:
        return
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n_images]
    momenta = [m.momentum for m in norms]
    net.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over the batches below
        m.train()
    try:
        for start in range(0, len(pick), batch_size):
            x = eval_view(images[pick[start:start + batch_size]].to(device), size)
            with autocast(device):
                net(x.contiguous(memory_format=torch.channels_last))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        net.eval()

"""The device's ceiling for training the student: a bare MobileNetV2 step's images per second.

A bare step is cross-entropy + AdamW on ready-made random tensors of the crop size (no
augmentation, no teacher, no validation), in the precision and memory layout the stages use
(catdog.precision, channels_last). The device run (catdog.device_run) measures it in the same
call as the stages and reports each stage's images per second as a share of it, as
benchmarks/bench_throughput.py's `limit` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from catdog.device import fused
from catdog.models import student
from catdog.precision import autocast
from catdog.train_loop import prepare_model


def seconds_per_step(step: Callable[[], None], steps: int, warmup: int,
                     device: torch.device) -> float:
    """Mean wall-clock seconds of `step` after `warmup` untimed calls (CUDA synchronised)."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def bare_step_rate(image_size: int, batch: int, device: torch.device, steps: int = 30,
                   warmup: int = 5) -> float:
    """Images per second of a bare training step at `image_size` px and `batch` images, timed
    over `steps` steps after `warmup` untimed ones; the caller's RNG streams are left untouched."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(0)
        net = prepare_model(student(), device).train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, **fused(net.parameters()))
        x = torch.randn(batch, 3, image_size, image_size, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 2, (batch,), device=device)

        def step() -> None:
            with autocast(device):
                loss = F.cross_entropy(net(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds = seconds_per_step(step, steps, warmup, device)
    return batch / seconds

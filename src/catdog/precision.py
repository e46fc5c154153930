"""Numeric precision per process: bf16 autocast where it is faster, chosen by measurement.

`compute.precision` is `fp32`, `bf16` or `auto`. On CUDA `auto` means bf16. On the CPU it
depends on the chip (AMX/AVX512-BF16 or not) and on the image size: bf16 wins for
EfficientNet-Lite2 at 224 px on both CPUs seen here (2.4x to 3.9x) but loses for MobileNetV2
training at 64 px. So `auto` times the stage's own workload both ways for a few steps and keeps
bf16 only when it is clearly faster (BF16_MARGIN), then says which it picked and why.

The choice is process-wide: `set_bf16` once in a stage's setup, then every `autocast(device)`
of the training loop, the teacher and the evaluation follows it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch

BF16_MARGIN = 1.15  # bf16 must be this much faster than fp32 to be chosen by `auto`
PROBE_STEPS = 3  # timed steps per precision and round (after one untimed warm-up step)
PROBE_ROUNDS = 3  # rounds of fp32 then bf16; each precision keeps its best round (load spikes only slow)
# Rounds stop early once bf16 runs at under 1/HOPELESS of fp32: no load spike seen slows a round
# that much (2.4x at most), and where the chip lacks bf16 (0.07x on a Zen 3 EPYC) its two further
# rounds of slow bf16 steps cost more than a small stage's own work.
HOPELESS = 5
# x86 vector levels below AVX-512 (torch.backends.cpu.get_cpu_capability()): no bf16 arithmetic
# in oneDNN, which then runs a reference path. On a Zen 3 EPYC (AVX2) bf16 trained MobileNetV2
# at 0.07x fp32 and ran EfficientNet-Lite2 slower too, so `auto` picks fp32 there without a
# probe (its one round cost 12 s of every training stage).
NO_BF16_CAPABILITIES = {"AVX2", "NO AVX"}

_bf16 = {"cpu": False, "cuda": True}  # device type -> use bf16 autocast


def set_bf16(device: torch.device, enabled: bool) -> None:
    """Use (or not) bf16 autocast for every later `autocast(device)` in this process."""
    _bf16[device.type] = enabled


def uses_bf16(device: torch.device) -> bool:
    return _bf16.get(device.type, False)


def name(device: torch.device) -> str:
    """'bf16' or 'fp32': what `autocast(device)` runs in now."""
    return "bf16" if uses_bf16(device) else "fp32"


def autocast(device: torch.device) -> AbstractContextManager:
    """bf16 autocast on `device` when chosen (see `choose`), else full precision."""
    if uses_bf16(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _rate(step: Callable[[], None], device: torch.device) -> float:
    """Steps per second of `step` in the current precision, after one warm-up."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(PROBE_STEPS):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return PROBE_STEPS / (time.perf_counter() - start)


def _best_rates(step: Callable[[], None], device: torch.device) -> tuple[float, float]:
    """(fp32, bf16) steps per second, each the best of PROBE_ROUNDS interleaved rounds: another
    process's burst of work can only slow a round down, so the best round is the one it spared
    (one round each once picked bf16 at 1.44x on a CPU where it is 0.6x, under load)."""
    rates: dict[bool, float] = {False: 0.0, True: 0.0}
    for _ in range(PROBE_ROUNDS):
        for bf16 in (False, True):
            set_bf16(device, bf16)
            rates[bf16] = max(rates[bf16], _rate(step, device))
        if rates[True] * HOPELESS < rates[False]:
            break
    return rates[False], rates[True]


def cpu_lacks_bf16() -> str | None:
    """The CPU's vector level when it has no bf16 arithmetic (see NO_BF16_CAPABILITIES), else None."""
    capability = torch.backends.cpu.get_cpu_capability()
    return capability if capability in NO_BF16_CAPABILITIES else None


def choose(mode: str, device: torch.device, step: Callable[[], None] | None = None,
           what: str = "") -> bool:
    """Decide bf16 (True) or fp32 for this process from `compute.precision` and set it.

    mode: 'fp32' | 'bf16' | 'auto'. For 'auto' on the CPU, `step` (one representative step of
    the stage's work, run under `autocast(device)`) is timed in both precisions, unless the CPU
    has no bf16 arithmetic at all (`cpu_lacks_bf16`): then fp32."""
    if mode in ("fp32", "bf16"):
        enabled, why = mode == "bf16", "compute.precision"
    elif device.type != "cpu":
        enabled, why = True, "auto on CUDA"
    elif step is None:
        enabled, why = False, "auto without a probe"
    elif (level := cpu_lacks_bf16()) is not None:
        enabled, why = False, f"auto: this CPU's torch runs {level}, no bf16 arithmetic; not probed"
    else:
        fp32, bf16 = _best_rates(step, device)
        enabled = bf16 > BF16_MARGIN * fp32
        why = f"auto: bf16 {bf16 / fp32:.2f}x fp32{' on ' + what if what else ''}"
    set_bf16(device, enabled)
    print(f"precision: {name(device)} ({why})", file=sys.stderr)
    return enabled

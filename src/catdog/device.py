"""Pick the compute device and CPU threads from the `compute` params."""

from __future__ import annotations

import torch


def pick_device(name: str = "auto", threads: int = 0) -> torch.device:
    """Return cuda when asked or available (for 'auto'), else cpu; fail clearly if cuda is missing."""
    if threads > 0:
        torch.set_num_threads(threads)
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: compute.device=cuda but no CUDA GPU is visible; use auto or cpu")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    # CUDA only (CPU numerics stay as they were): cuDNN picks the fastest kernels for the fixed
    # input sizes, and fp32 matmuls (the batched augmentation's) run on TF32 tensor cores.
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return torch.device("cuda")


def fused(params) -> dict:
    """Optimizer keyword arguments: fused kernels when the parameters live on CUDA."""
    first = next(iter(params), None)
    return {"fused": True} if first is not None and first.is_cuda else {}

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
    return torch.device("cuda")

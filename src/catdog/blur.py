"""A 1-D blur with reflected borders as a matrix: shared by the SimCLR views' random blur
(catdog.augment) and the Gaussian-blur corruption (catdog.corruptions)."""

from __future__ import annotations

import torch


def reflect_band(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """[N, size, size] matrices M[n] with (M[n] @ v)[i] = sum_t kernel[n, t] * v[reflect(i + t - r)]
    for 1-D kernels [N, 2r + 1]: a blur along one side, borders reflected (r < size)."""
    n, k = kernel.shape
    taps = torch.arange(-(k // 2), k // 2 + 1, device=kernel.device)
    idx = torch.arange(size, device=kernel.device)[:, None] + taps[None, :]  # [size, K] source indices
    idx = idx.abs()  # reflect at the left border (-1 -> 1)
    idx = torch.where(idx >= size, 2 * (size - 1) - idx, idx)  # reflect at the right border
    mat = torch.zeros(n, size, size, device=kernel.device)
    return mat.scatter_add_(2, idx.expand(n, size, k), kernel[:, None, :].expand(n, size, k))

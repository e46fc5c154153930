"""The sync-free NT-Xent loss (used on CUDA) equals lightly's NTXentLoss in value and gradient."""

from __future__ import annotations

import pytest
import torch
from lightly.loss import NTXentLoss

from catdog.simclr import SyncFreeNTXent, nt_xent


@pytest.mark.parametrize(("n", "temperature"), [(2, 0.5), (8, 0.2), (33, 0.1)])
def test_equals_lightly_in_value_and_gradient(n: int, temperature: float) -> None:
    g = torch.Generator().manual_seed(n)
    a = torch.randn(n, 16, generator=g, dtype=torch.float64)
    b = a + 0.5 * torch.randn(n, 16, generator=g, dtype=torch.float64)  # views that agree a little
    ours_a, ours_b = a.clone().requires_grad_(), b.clone().requires_grad_()
    theirs_a, theirs_b = a.clone().requires_grad_(), b.clone().requires_grad_()
    ours = SyncFreeNTXent(temperature)(ours_a, ours_b)
    theirs = NTXentLoss(temperature=temperature)(theirs_a, theirs_b)
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)
    torch.testing.assert_close(ours_a.grad, theirs_a.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours_b.grad, theirs_b.grad, rtol=1e-10, atol=1e-12)


def _pair(n: int, dim: int, dtype: torch.dtype, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Two views' projections of n images: b agrees with a a little."""
    g = torch.Generator().manual_seed(n)
    a = torch.randn(n, dim, generator=g, dtype=dtype)
    return a.to(device), (a + 0.5 * torch.randn(n, dim, generator=g, dtype=dtype)).to(device)


def _loss_and_grads(loss: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
    a, b = a.clone().requires_grad_(), b.clone().requires_grad_()
    value = loss(a, b)
    value.backward()
    return [value.detach(), a.grad, b.grad]


@pytest.mark.parametrize(("n", "temperature"), [(2, 0.5), (8, 0.2), (33, 0.1), (256, 0.2), (100, 1.0)])
def test_equals_lightly_in_fp32(n: int, temperature: float) -> None:
    """fp32, as training runs the loss: equal up to the last bits (the logits' column order differs,
    so the CPU keeps lightly's loss and its bit-identical runs)."""
    a, b = _pair(n, 128, torch.float32)
    ours = _loss_and_grads(SyncFreeNTXent(temperature), a, b)
    theirs = _loss_and_grads(NTXentLoss(temperature=temperature), a, b)
    for got, want in zip(ours, theirs, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_no_host_sync_on_cuda_and_lightlys_value() -> None:
    """Forward and backward run without a device-to-host sync (lightly's boolean mask needs one)."""
    a, b = _pair(64, 128, torch.float32, "cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        ours = _loss_and_grads(SyncFreeNTXent(0.2), a, b)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    theirs = _loss_and_grads(NTXentLoss(temperature=0.2), a, b)
    for got, want in zip(ours, theirs, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_identical_views_score_below_the_constant_embedding() -> None:
    """A perfect instance discriminator beats ln(2n - 1), the loss of a constant embedding."""
    n = 16
    z = torch.eye(n, 32)
    assert SyncFreeNTXent(0.1)(z, z).item() < 0.01
    assert SyncFreeNTXent(0.1)(torch.ones(n, 8), torch.ones(n, 8)).item() == pytest.approx(
        torch.log(torch.tensor(2.0 * n - 1)).item(), rel=1e-5)


def test_the_cpu_keeps_lightlys_loss() -> None:
    assert isinstance(nt_xent(0.2, torch.device("cpu")), NTXentLoss)
    assert isinstance(nt_xent(0.2, torch.device("cuda")), SyncFreeNTXent)

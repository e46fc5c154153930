"""catdog.bn_calibration: BN statistics re-estimated on whole images at the val side."""

from __future__ import annotations

import torch
from torch import nn

from catdog.augment import eval_view
from catdog.bn_calibration import recalibrate_bn

CPU = torch.device("cpu")


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Dropout(0.5), nn.Linear(4, 2))


def images(n: int = 24, side: int = 40) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(1))


def test_statistics_are_those_of_the_chosen_whole_images_at_the_size() -> None:
    net, pixels = small_net(), images()
    net[1].running_mean.fill_(5.0)  # stale statistics, far from the images'
    net[1].running_var.fill_(100.0)
    recalibrate_bn(net, pixels, size=16, n_images=len(pixels), seed=3, device=CPU, batch_size=64)
    with torch.no_grad():
        conv_out = net[0](eval_view(pixels, 16))
    # one batch holds every image: the running statistics are that batch's (variance unbiased)
    torch.testing.assert_close(net[1].running_mean, conv_out.mean((0, 2, 3)))
    torch.testing.assert_close(net[1].running_var, conv_out.var((0, 2, 3), unbiased=True))
    assert not net.training and not net[1].training and net[1].momentum == 0.1


def test_a_subset_is_drawn_by_the_seed_and_nothing_else_changes() -> None:
    pixels = images()
    a, b, c = small_net(), small_net(), small_net()
    weights = [p.clone() for p in a.parameters()]
    rng = torch.get_rng_state()
    recalibrate_bn(a, pixels, 16, 8, seed=1, device=CPU)
    recalibrate_bn(b, pixels, 16, 8, seed=1, device=CPU)
    recalibrate_bn(c, pixels, 16, 8, seed=2, device=CPU)
    assert torch.equal(a[1].running_mean, b[1].running_mean)  # same seed, same images
    assert not torch.equal(a[1].running_mean, c[1].running_mean)  # another seed, other images
    assert all(torch.equal(p, w) for p, w in zip(a.parameters(), weights, strict=True))
    assert torch.equal(torch.get_rng_state(), rng)  # the global generator (dropout's) is untouched


def test_off_or_no_batch_norm_leaves_the_net_alone() -> None:
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    recalibrate_bn(net, images(), 16, 0, seed=0, device=CPU)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    plain = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten())
    recalibrate_bn(plain, images(), 16, 8, seed=0, device=CPU)  # nothing to do, no error

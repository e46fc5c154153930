"""The training stages' optimizer: decay groups, and a slower backbone than the new head."""

from __future__ import annotations

import pytest
import torch

from catdog.models import student
from catdog.supervised import make_optimizer, param_groups


def _cfg(optimizer: str) -> dict:
    return {"optimizer": optimizer, "lr": 0.1, "weight_decay": 0.01, "epochs": 2, "batch_size": 4}


def test_groups_cover_every_parameter_once_and_skip_decay_on_bn_and_bias() -> None:
    net = student()
    groups = param_groups(net, 0.01, 0.1, backbone_lr_scale=0.25)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters()) and len(ids) == len(set(ids))
    for g in groups:
        assert g["weight_decay"] == (0.01 if all(p.ndim > 1 for p in g["params"]) else 0.0)
        assert g["weight_decay"] == 0.0 or all(p.ndim > 1 for p in g["params"])
    head = {id(p) for p in net.classifier.parameters()}
    for g in groups:
        in_head = {id(p) in head for p in g["params"]}
        assert len(in_head) == 1  # a group is all head or all backbone
        assert g["lr"] == pytest.approx(0.1 if in_head.pop() else 0.025)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_backbone_lr_scale_holds_through_the_schedule(optimizer: str) -> None:
    net = student()
    opt, sched = make_optimizer(net, _cfg(optimizer), n_images=40, backbone_lr_scale=0.1)
    head = {id(p) for p in net.classifier.parameters()}
    net(torch.rand(2, 3, 32, 32)).sum().backward()
    for _ in range(7):  # into the schedule, past any warm-up step
        opt.step()
        sched.step()
        rates = {id(p) in head: g["lr"] for g in opt.param_groups for p in g["params"][:1]}
        assert rates[False] == pytest.approx(0.1 * rates[True]) and rates[True] > 0


def test_scale_one_keeps_a_single_lr() -> None:
    opt, _ = make_optimizer(student(), _cfg("sgd"), n_images=40)
    assert len({g["lr"] for g in opt.param_groups}) == 1


def test_the_log_names_each_learning_rate_when_they_differ() -> None:
    from catdog.train_loop import learning_rates

    net = student()
    one, _ = make_optimizer(net, _cfg("adamw"), 16)
    assert set(learning_rates(one)) == {"lr"}
    two, _ = make_optimizer(net, _cfg("adamw"), 16, backbone_lr_scale=0.25)
    rates = learning_rates(two)
    assert set(rates) == {"lr/backbone", "lr/head"}
    assert rates["lr/backbone"] == pytest.approx(0.25 * rates["lr/head"])


def test_cpu_optimizers_and_backends_stay_unfused_and_untouched() -> None:
    """The CUDA-only speed settings leave a CPU run as it was (its numbers bit-identical)."""
    from catdog.device import fused, pick_device

    benchmark = torch.backends.cudnn.benchmark
    assert pick_device("cpu").type == "cpu" and torch.backends.cudnn.benchmark == benchmark
    net = student()
    assert fused(net.parameters()) == {}
    for name in ("adamw", "sgd"):
        opt, _ = make_optimizer(net, _cfg(name), 16)
        assert not opt.defaults.get("fused")

"""Attention transfer: the loss against a hand-computed case, the teacher's map pooled to the
student's side, the stride matching of layers, and its place in the distillation loss."""

from __future__ import annotations

import math

import pytest
import torch

from catdog.attention import STUDENT_BLOCKS, attention_loss, attention_map, maps_by_stride
from catdog.distillation import distill_loss, student_outputs
from catdog.models import student
from catdog.teachers import Teacher


def test_loss_matches_a_hand_computed_case() -> None:
    # student: 2 channels over 1x2 positions; energy (mean of squares) = [(1+1)/2, (0+4)/2] = [1, 2]
    s = torch.tensor([[[[1.0, 0.0]], [[1.0, 2.0]]]])
    # teacher: 1 channel, energy [4, 0] -> normalised [1, 0]
    t = torch.tensor([[[[2.0, 0.0]]]])
    q_s = [1 / math.sqrt(5), 2 / math.sqrt(5)]
    expected = ((q_s[0] - 1) ** 2 + (q_s[1] - 0) ** 2) / 2  # mean over the 2 positions
    assert attention_loss([s], [t]).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(1 - 1 / math.sqrt(5))  # unit vectors: mean = 1 - cos


def test_the_teachers_map_is_pooled_to_the_students_side() -> None:
    s = torch.tensor([[[[1.0, math.sqrt(2.0)]]]])  # energy [1, 2] at 1x2
    r2 = math.sqrt(2.0)
    t = torch.tensor([[[[1.0, 1.0, r2, r2], [1.0, 1.0, r2, r2]]]])  # energy [1,1,2,2] x2 rows at 2x4
    assert attention_map(t, (1, 2))[0].tolist() == pytest.approx(attention_map(s)[0].tolist())
    assert attention_loss([s], [t]).item() == pytest.approx(0.0, abs=1e-12)


def test_layers_add_up_and_only_the_student_gets_gradients() -> None:
    gen = torch.Generator().manual_seed(0)
    s1, s2 = (torch.randn(3, 4, n, n, generator=gen, requires_grad=True) for n in (4, 2))
    t1, t2 = (torch.randn(3, 6, n, n, generator=gen, requires_grad=True) for n in (8, 4))
    both = attention_loss([s1, s2], [t1, t2])
    assert both.item() == pytest.approx(attention_loss([s1], [t1]).item() + attention_loss([s2], [t2]).item())
    both.backward()
    assert s1.grad is not None and s1.grad.abs().sum() > 0
    assert t1.grad is None and t2.grad is None
    with pytest.raises(ValueError, match="2 student maps against 1"):
        attention_loss([s1, s2], [t1])


def test_maps_are_matched_by_stride_deepest_first() -> None:
    maps = [torch.zeros(1, 1, n, n) + i for i, n in enumerate((32, 16, 16, 8, 4))]
    chosen = maps_by_stride(maps, 64, (4, 16))
    assert [m[0, 0, 0, 0].item() for m in chosen] == [2.0, 4.0]  # the later of the two stride-4 maps
    with pytest.raises(ValueError, match="no feature map at stride 32"):
        maps_by_stride(maps, 64, (32,))


def test_student_taps_end_the_stride_8_16_32_stages() -> None:
    net = student().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, fmap, taps = student_outputs(net, x, STUDENT_BLOCKS)
        assert torch.allclose(logits, net(x), atol=1e-6)  # the same forward, split open
    assert [64 // t.shape[-1] for t in taps] == [8, 16, 32]
    assert taps[-1] is fmap


@pytest.fixture(scope="module")
def teacher() -> Teacher:
    return Teacher("efficientnet_lite2", 96)


def test_teacher_block_maps_cover_the_students_strides(teacher: Teacher) -> None:
    with torch.no_grad():
        logits, fmap, maps = teacher.forward01_with_maps(torch.rand(2, 3, 96, 96))
        plain_logits, _ = teacher.forward01_with_map(torch.rand(2, 3, 96, 96))
    assert logits.shape == plain_logits.shape == (2, 2)
    assert len(maps) == len(teacher.blocks())
    assert [96 // m.shape[-1] for m in maps_by_stride(maps, 96, (8, 16, 32))] == [8, 16, 32]
    assert not any(b._forward_hooks for b in teacher.blocks())  # hooks removed after the call


def test_distill_loss_adds_attention_transfer_when_weighted(teacher: Teacher) -> None:
    batch = torch.randint(0, 256, (4, 3, 96, 96), dtype=torch.uint8)
    labels = torch.tensor([0, 1, -1, -1])
    cfg = {"image_size": 64, "temperature": 4.0, "alpha": 0.9, "label_smoothing": 0.0}
    torch.manual_seed(0)
    net = student()
    losses = {}
    for weight in (0.0, 500.0):
        losses[weight] = distill_loss(net, teacher, batch, labels, None, cfg | {"attention_weight": weight},
                                      torch.Generator().manual_seed(1))
    assert torch.isfinite(losses[500.0])
    assert losses[500.0].item() > losses[0.0].item()  # same crops, same logits: the AT term on top
    losses[500.0].backward()
    assert net.features[6].conv[0][0].weight.grad is not None


def test_a_crop_of_the_whole_image_map_is_its_region_flipped_with_the_crop() -> None:
    from catdog.augment import crop_maps

    energy = torch.arange(16, dtype=torch.float32).view(1, 4, 4)  # one whole-image map, 4x4
    top_left = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.0]])  # x0, y0, width, height, flip
    assert crop_maps(energy, top_left, 2)[0, 0].tolist() == [[0.0, 1.0], [4.0, 5.0]]
    flipped = torch.tensor([[0.0, 0.0, 0.5, 0.5, 1.0]])
    assert crop_maps(energy, flipped, 2)[0, 0].tolist() == [[1.0, 0.0], [5.0, 4.0]]
    bottom_right = torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.0]])
    assert crop_maps(energy, bottom_right, 2)[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]
    # the whole box at half the side: 2x2 means, as area pooling gives them
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]])
    assert crop_maps(energy, whole, 2)[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    # each map of a batch is cut by its own box
    two = crop_maps(torch.stack([energy[0], energy[0] + 100]), torch.cat([top_left, bottom_right]), 2)
    assert two[:, 0, 0, 0].tolist() == [0.0, 110.0]

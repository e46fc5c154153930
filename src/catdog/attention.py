"""Attention transfer (Zagoruyko & Komodakis, ICLR 2017, "Paying more attention to attention").

A layer's spatial attention map is the channel mean of its squared activations, flattened and
L2-normalised:  Q(A) = vec(mean_c A_c^2) / ||vec(mean_c A_c^2)||_2.  The loss between student and
teacher at matching depths (same stride) is the mean squared difference of their maps, summed over
the layer pairs (the paper's `at_loss`; its beta/2 is distill.attention_weight). Channel counts may
differ; the teacher's map, computed at its own resolution, is area-pooled to the student's before
the normalisation, so that a teacher at 224 px can teach a student at 64 px.

In cached mode the teacher's maps are those of each whole image, stored once (stage
teacher_crops with teacher_crops.attention); `catdog.augment.crop_maps` cuts the student's crop box
out of them (RoIAlign, flipped with the crop), so that the target describes the region the student sees.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

STUDENT_BLOCKS = (6, 13, 18)  # MobileNetV2 `features` indices ending the stride-8, -16 and -32 stages
STRIDES = (8, 16, 32)  # the strides of STUDENT_BLOCKS at torchvision's stem stride


def energy_map(fmap: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, 1, H, W]: the channel mean of squared activations (float32)."""
    return fmap.float().pow(2).mean(dim=1, keepdim=True)


def normalised(energy: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """[N, 1, H, W] energy -> [N, h*w]: area-pooled to `size` first, then L2-normalised."""
    energy = energy.float()
    if size is not None and tuple(energy.shape[-2:]) != tuple(size):
        energy = F.adaptive_avg_pool2d(energy, size)
    return F.normalize(energy.flatten(1), dim=1)


def attention_map(fmap: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """[N, C, H, W] -> [N, h*w]: normalised channel mean of squares, area-pooled to `size` first."""
    return normalised(energy_map(fmap), size)


def attention_loss(student_maps: list[torch.Tensor], teacher_maps: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layer pairs of mean((Q_s - Q_t)^2); the teacher side carries no gradient."""
    return energy_loss(student_maps, [energy_map(t.detach()) for t in teacher_maps])


def energy_loss(student_maps: list[torch.Tensor], teacher_energies: list[torch.Tensor]) -> torch.Tensor:
    """attention_loss with the teacher's side given as energy maps [N, 1, h, w] (energy_map), as
    the teacher_crops stage stores them."""
    if len(student_maps) != len(teacher_energies) or not student_maps:
        raise ValueError(f"{len(student_maps)} student maps against {len(teacher_energies)} teacher maps")
    total = student_maps[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(student_maps, teacher_energies, strict=True):
        q_t = normalised(t.detach(), tuple(s.shape[-2:]))
        total = total + (attention_map(s) - q_t).pow(2).mean()
    return total


def maps_by_stride(maps: list[torch.Tensor], input_side: int, strides: tuple[int, ...]) -> list[torch.Tensor]:
    """For each stride, the deepest of `maps` (in forward order) whose side is input_side / stride."""
    out = []
    for stride in strides:
        found = [m for m in maps if round(input_side / m.shape[-1]) == stride]
        if not found:
            sides = sorted({m.shape[-1] for m in maps})
            raise ValueError(f"no feature map at stride {stride} of a {input_side} px input (sides: {sides})")
        out.append(found[-1])
    return out

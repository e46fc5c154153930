"""One knowledge-distillation step's loss, shared by the distill stage, the recipe probe and the
benchmarks: the student's view of a batch, the teacher's targets (cached or asked online about the
same crop) and the Hinton loss of catdog.kd_loss, plus the FitNets hint when an adapter is given
and attention transfer (catdog.attention) when distill.attention_weight > 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from catdog.attention import STUDENT_BLOCKS, attention_loss, energy_loss, maps_by_stride
from catdog.augment import crop_boxes01, crop_flip01, crop_maps, cut_boxes01, normalize
from catdog.kd_loss import feature_loss, kd_loss
from catdog.precision import autocast
from catdog.teachers import Teacher

MIN_SCALE = 0.35  # smallest crop area fraction of the student's (and online teacher's) views


def student_outputs(net: nn.Module, x: torch.Tensor, taps: tuple[int, ...] = ()
                    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(logits, last feature map [N, 1280, h, w], the outputs of `features[i]` for i in `taps`)
    of a MobileNetV2: its forward, split open."""
    maps = []
    for i, layer in enumerate(net.features):
        x = layer(x)
        if i in taps:
            maps.append(x)
    return net.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)), x, maps


def distill_loss(net: nn.Module, teacher: Teacher | None, batch: torch.Tensor, labels: torch.Tensor,
                 targets: torch.Tensor | None, cfg: dict, generator: torch.Generator,
                 adapter: nn.Module | None = None,
                 stored: tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]] | None = None,
                 image_energies: list[torch.Tensor] | None = None,
                 image_features: torch.Tensor | None = None) -> torch.Tensor:
    """KD loss of one uint8 batch (labels < 0 mark unlabeled images). With `targets` (cached
    teacher logits of whole images) the student sees a random crop; with `stored` (the batch's
    crop boxes [B, K, 5], the teacher's logits of them [B, K, 2] and, for attention transfer, its
    energy maps [B, K, h, w] per stride; stage teacher_crops) it sees one of its image's K stored
    crops, drawn at random, and learns that crop's own targets; with
    neither, the teacher is asked online about the very same crop, cut at the teacher's
    resolution and shrunk for the student. With an `adapter` (1x1 conv, student -> teacher
    channels) the feature-map hint loss is added. With `targets` and `image_energies` (the
    teacher's energy maps of the whole images [B, h, w] per stride, stage teacher_crops),
    attention transfer reads them cut to the student's crop (catdog.augment.crop_maps); with
    `targets`, an `adapter` and `image_features` (the teacher's last feature map of each whole
    image [B, D, h, w]), so does the FitNets hint."""
    size = cfg["image_size"]
    attention_weight = cfg.get("attention_weight", 0.0)
    stored_energies: list[torch.Tensor] = []
    # cached mode with the whole images' maps: attention transfer on the crop's region of them
    whole_maps = bool(stored is None and targets is not None and image_energies and attention_weight > 0)
    # cached mode with the whole images' feature maps: the FitNets hint on the crop's region of them
    whole_features = bool(stored is None and targets is not None and image_features is not None
                          and adapter is not None)
    if stored is not None:
        boxes, crop_logits, energies = stored
        rows = torch.arange(len(batch), device=boxes.device)
        pick = torch.randint(boxes.shape[1], (len(batch),), generator=generator,
                             device=generator.device).to(boxes.device)
        crops, targets = cut_boxes01(batch, boxes[rows, pick], size), crop_logits[rows, pick]
        if attention_weight > 0:
            stored_energies = [e[rows, pick].unsqueeze(1) for e in energies]
    elif whole_maps or whole_features:
        # the same draws as crop_flip01, kept as boxes to cut the teacher's maps with
        boxes = crop_boxes01(len(batch), generator, min_scale=MIN_SCALE)
        crops = cut_boxes01(batch, boxes, size)
    else:
        crops = crop_flip01(batch, size if targets is not None else teacher.image_size, generator,
                            min_scale=MIN_SCALE)
    teacher_map, teacher_blocks = None, []
    if targets is None:
        with torch.no_grad():
            if attention_weight > 0:
                targets, teacher_map, teacher_blocks = teacher.forward01_with_maps(crops)
            else:
                targets, teacher_map = teacher.forward01_with_map(crops)
        crops = F.interpolate(crops, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
    taps = STUDENT_BLOCKS if teacher_blocks or stored_energies or whole_maps else ()
    with autocast(batch.device):
        logits, fmap, student_blocks = student_outputs(
            net, normalize(crops).contiguous(memory_format=torch.channels_last), taps)
        hint = adapter(fmap) if adapter is not None else None
    loss = kd_loss(logits, targets, labels, temperature=cfg["temperature"], alpha=cfg["alpha"],
                   labeled_mask=labels >= 0, label_smoothing=cfg["label_smoothing"])
    if hint is not None and whole_features:
        teacher_map = crop_maps(image_features, boxes, hint.shape[-1])
    if hint is not None and teacher_map is not None:
        loss = loss + cfg["feature_weight"] * feature_loss(hint, teacher_map)
    if student_blocks and whole_maps:
        cut = [crop_maps(e, boxes, s.shape[-1])
               for e, s in zip(image_energies, student_blocks, strict=True)]
        loss = loss + attention_weight * energy_loss(student_blocks, cut)
    elif student_blocks and stored_energies:
        loss = loss + attention_weight * energy_loss(student_blocks, stored_energies)
    elif student_blocks:
        strides = tuple(round(size / m.shape[-1]) for m in student_blocks)
        matched = maps_by_stride(teacher_blocks, teacher.image_size, strides)
        loss = loss + attention_weight * attention_loss(student_blocks, matched)
    return loss

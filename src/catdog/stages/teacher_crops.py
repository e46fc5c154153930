"""Stage `teacher_crops`: consistent teaching at a fixed cost (FKD: Shen & Xing, ECCV 2022).

KD is most faithful when the teacher's target describes the very view the student sees ("a good
teacher is patient and consistent", Beyer et al., CVPR 2022); whole-image logits (stage
`teacher_logits`) do not, once the student trains on random crops. This stage samples, once per
study, `teacher_crops.crops` random resized crops (boxes and flips, not pixels) of every labeled
and `data.max_size` pool image and stores the teacher's logits of each; `distill.teacher_mode:
crops` then trains each step on one of an image's stored crops with its own target. With
`teacher_crops.crops: 0` (the default) the stage writes an empty file at no cost.

With `teacher_crops.attention`, the teacher's energy maps at strides 8, 16 and 32 are stored
too (catdog.attention; about 2 KB per view at 224 px), so that attention transfer runs without
the teacher as well: the maps of each stored crop (distill.attention_weight in crops mode) and
the maps of each whole image (in cached mode, cut to the student's crop by
catdog.augment.crop_maps), even with `teacher_crops.crops: 0`. With
`teacher_crops.features`, the teacher's last feature map of each whole image is stored the same
way (float16 [D, 7, 7] at 224 px, about 125 KB per image for EfficientNet-Lite2), so that the
FitNets hint (distill.feature_weight) runs in cached mode without the teacher as well.

Writes data/teacher/crops.pt: {"files": N source paths (labeled first, then the pool in rank
order), "boxes": float32 [N, K, 5] (catdog.augment.crop_boxes01), "logits": float32 [N, K, 2],
"energies": [] or float16 [N, K, h, w] per stride, "image_energies": [] or float16 [N, h, w] per
stride, "image_features": None or float16 [N, D, h, w], "strides", "precision", "min_scale",
"seed"}.
"""

from __future__ import annotations

import sys

import torch

from catdog.atomic import save_torch
from catdog.attention import STRIDES, energy_map, maps_by_stride
from catdog.augment import crop_boxes01, cut_boxes01
from catdog.cache import RAW_IMAGES, load_split
from catdog.decode_splits import pool_rows, read_index, rows_split
from catdog.device import pick_device
from catdog.params import load_or_exit
from catdog.stage_time import StageClock
from catdog.teachers import CROPS_FILE, TEACHER_FILE, Teacher, choose_teacher_precision, load_teacher
from catdog.train_loop import progress


def teacher_crop_targets(teacher: Teacher, images: torch.Tensor, boxes: torch.Tensor,
                         batch_size: int, desc: str, attention: bool = False, features: bool = False
                         ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
    """Logits [N, K, 2] of the teacher on each image's K boxed crops (boxes [N, K, 5]), about
    `batch_size` crops per forward; with `attention`, also its energy maps (catdog.attention) at
    strides 8, 16 and 32, float16 [N, K, h, w] each, else []; with `features`, also its last
    feature map, float16 [N, K, D, h, w], else None."""
    n, k = boxes.shape[:2]
    per = max(1, batch_size // k)  # images per forward
    device = teacher.mean.device
    logits, energies, fmaps = [], [], []
    with torch.no_grad():
        for start in progress(range(0, n, per), desc):
            batch = images[start:start + per].to(device).repeat_interleave(k, dim=0)
            crops = cut_boxes01(batch, boxes[start:start + per].reshape(-1, 5), teacher.image_size)
            if attention:
                out, fmap, blocks = teacher.forward01_with_maps(crops)
                maps = maps_by_stride(blocks, teacher.image_size, STRIDES)
                energies.append([energy_map(m).half().cpu().view(-1, k, *m.shape[-2:]) for m in maps])
            else:
                out, fmap = teacher.forward01_with_map(crops)
            if features:
                fmaps.append(fmap.half().cpu().view(-1, k, *fmap.shape[1:]))
            logits.append(out.float().cpu().view(-1, k, 2))
    return (torch.cat(logits), [torch.cat(level) for level in zip(*energies, strict=True)],
            torch.cat(fmaps) if features else None)


def targets_of(teacher: Teacher, labeled: torch.Tensor, pool: torch.Tensor, labeled_boxes: torch.Tensor,
               pool_boxes: torch.Tensor, batch_size: int, what: str, attention: bool,
               features: bool = False) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
    """teacher_crop_targets of the labeled images, then of the pool, joined."""
    parts = [teacher_crop_targets(teacher, labeled, labeled_boxes, batch_size, f"{what} labeled",
                                  attention, features),
             teacher_crop_targets(teacher, pool, pool_boxes, batch_size, f"{what} pool ({len(pool)})",
                                  attention, features)]
    return (torch.cat([p[0] for p in parts]),
            [torch.cat(level) for level in zip(parts[0][1], parts[1][1], strict=True)],
            torch.cat([parts[0][2], parts[1][2]]) if features else None)


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("teacher_crops")
    params = load_or_exit()
    data, compute, cfg = params["data"], params["compute"], params["teacher_crops"]
    k, attention, features = cfg["crops"], cfg["attention"], cfg["features"]
    files, boxes, logits, precision = [], torch.zeros(0, k, 5), torch.zeros(0, k, 2), "none"
    energies: list[torch.Tensor] = []
    image_energies: list[torch.Tensor] = []
    image_features = None
    if k or attention or features:
        labeled = load_split("labeled")
        rows = pool_rows(read_index(), data["max_size"], "data.max_size")
        pool = rows_split(rows, RAW_IMAGES.parent, data["image_size"], "pool")
        files = labeled.files + pool.files
        generator = torch.Generator().manual_seed(cfg["seed"])
        boxes = crop_boxes01(len(files) * k, generator, min_scale=cfg["min_scale"]).view(len(files), k, 5)
        device = pick_device(compute["device"], compute["threads"])
        teacher = load_teacher(TEACHER_FILE, device)
        precision = choose_teacher_precision(teacher, compute["precision"], device)
        batch, n_lab = params["teacher"]["batch_size"], len(labeled)
        if k:
            logits, energies, _ = targets_of(teacher, labeled.images, pool.images, boxes[:n_lab],
                                             boxes[n_lab:], batch, "crops", attention)
        if attention or features:  # the whole images' maps, one whole-image box each, for cached mode
            whole = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0]).expand(len(files), 1, 5)
            _, maps, fmaps = targets_of(teacher, labeled.images, pool.images, whole[:n_lab],
                                        whole[n_lab:], batch, "whole images", attention, features)
            image_energies = [m[:, 0] for m in maps]
            image_features = fmaps[:, 0] if fmaps is not None else None
    save_torch(CROPS_FILE, {"files": files, "boxes": boxes, "logits": logits, "precision": precision,
                            "min_scale": cfg["min_scale"], "seed": cfg["seed"],
                            "energies": energies, "image_energies": image_energies,
                            "image_features": image_features,
                            "strides": list(STRIDES) if attention else []})
    print(f"teacher_crops: {k} crops of each of {len(files)} images"
          f"{' and the whole images attention maps' if attention else ''}"
          f"{' and feature maps' if features else ''} in {precision} "
          f"-> {CROPS_FILE}", file=sys.stderr)
    clock.save()


if __name__ == "__main__":
    main()

"""Stage `teacher`: fit a linear Cat/Dog head on frozen ImageNet features.

Reads params groups `teacher` and `compute`, the labeled and val caches (never test: the
distillation stages depend on this stage's output), and writes
  models/teacher.pt              the teacher file (catdog.teachers.save_teacher)
  models/teacher.json            val_accuracy, the chosen C, the backbone's precision
The regularisation C is chosen on val only. The teacher_score stage scores it on test.
"""

from __future__ import annotations

import torch

from catdog.atomic import save_json
from catdog.cache import load_split
from catdog.device import pick_device
from catdog.logistic_head import fit_head
from catdog.params import load_or_exit
from catdog.stage_time import StageClock
from catdog.teachers import (
    TEACHER_FILE,
    TEACHER_INFO,
    Teacher,
    batched,
    choose_teacher_precision,
    save_teacher,
    to_device,
)


def main() -> None:
    clock = StageClock("teacher")
    params = load_or_exit()
    cfg, compute = params["teacher"], params["compute"]
    device = pick_device(compute["device"], compute["threads"])
    torch.manual_seed(cfg["seed"])
    splits = {name: load_split(name) for name in ("labeled", "val")}
    for name, split in splits.items():
        if len(set(split.labels.tolist())) < 2:
            raise SystemExit(f"error: the {name} split needs both classes to fit the teacher")

    teacher = to_device(Teacher(cfg["arch"], cfg["image_size"]), device)
    precision = choose_teacher_precision(teacher, compute["precision"], device)
    feats = {name: batched(teacher.embed, split.images, cfg["batch_size"], desc=f"teacher {name}")
             for name, split in splits.items()}
    labels = {name: split.labels.numpy() for name, split in splits.items()}

    scaler, lr, c, val_acc = fit_head(feats["labeled"].numpy(), labels["labeled"],
                                      feats["val"].numpy(), labels["val"], cfg["seed"])
    teacher.set_head_from_logistic(scaler, lr)

    save_teacher(TEACHER_FILE, teacher)
    # val_accuracy: what model selection saw; dtype: bf16 or fp32, what the backbone ran in.
    save_json(TEACHER_INFO, {"val_accuracy": val_acc, "C": c, "dtype": precision})
    print(f"teacher {cfg['arch']}@{cfg['image_size']}px: val accuracy {val_acc:.4f}, C={c:g}, "
          f"{len(labels['labeled'])} labeled -> {TEACHER_FILE}")
    clock.save()


if __name__ == "__main__":
    main()

"""Stage `teacher_logits`: the teacher's logits of the labeled images and the largest pool, once.

Pools are nested (the pool of n images is the first n pool ranks), so the logits of the
`data.max_size` pool serve every smaller pool: `dvc exp run -S data.size=3000` asks the teacher
nothing, and every distillation stage (kd, imagenet_kd, simclr_kd) reads the same file.
Writes data/teacher/logits.pt (catdog.teachers.save_logits): labeled images first, then the pool
in rank order, each logit row next to its source file.
"""

from __future__ import annotations

import sys

import torch

from catdog.cache import RAW_IMAGES, load_split
from catdog.decode_splits import pool_rows, read_index, rows_split
from catdog.device import pick_device
from catdog.params import load_or_exit
from catdog.stage_time import StageClock
from catdog.teachers import (
    LOGITS_FILE,
    TEACHER_FILE,
    batched,
    choose_teacher_precision,
    load_teacher,
    save_logits,
)


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("teacher_logits")
    params = load_or_exit()
    data, compute = params["data"], params["compute"]
    rows = pool_rows(read_index(), data["max_size"], "data.max_size")
    device = pick_device(compute["device"], compute["threads"])
    teacher = load_teacher(TEACHER_FILE, device)
    precision = choose_teacher_precision(teacher, compute["precision"], device)
    labeled = load_split("labeled")
    pool = rows_split(rows, RAW_IMAGES.parent, data["image_size"], "pool")
    batch = params["teacher"]["batch_size"]
    logits = torch.cat([batched(teacher, labeled.images, batch, desc="teacher labeled"),
                        batched(teacher, pool.images, batch, desc=f"teacher pool ({len(pool)})")])
    save_logits(LOGITS_FILE, labeled.files + pool.files, logits, precision)
    print(f"teacher_logits: {len(logits)} images ({len(labeled)} labeled, {len(pool)} pool) in "
          f"{precision} -> {LOGITS_FILE}", file=sys.stderr)
    clock.save()


if __name__ == "__main__":
    main()

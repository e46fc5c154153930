"""Stage `heldout`: unlabeled images that no pool holds, labeled by the teacher.

The `data.heldout` pool ranks right after the largest pool (data.max_size) are outside every
pool of the study, so no training stage ever sees them. The teacher (0.98 test accuracy on the
cpu profile) labels them; agreement with it scores a representation or a tuning probe with no
test image and at a tenth of the 180 val images' noise. Writes data/teacher/heldout.pt, a split
file (catdog.cache) whose `labels` are the teacher's predictions, not the true labels.
"""

from __future__ import annotations

import sys

from catdog.cache import HELDOUT_FILE, RAW_IMAGES, Split, save_split
from catdog.decode_splits import pool_rows, read_index, rows_split
from catdog.device import pick_device
from catdog.params import load_or_exit
from catdog.stage_time import StageClock
from catdog.teachers import TEACHER_FILE, batched, choose_teacher_precision, load_teacher


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("heldout")
    params = load_or_exit()
    data, compute = params["data"], params["compute"]
    stop = data["max_size"] + data["heldout"]
    rows = pool_rows(read_index(), stop, "data.max_size + data.heldout", start=data["max_size"])
    images = rows_split(rows, RAW_IMAGES.parent, data["image_size"], "heldout")
    device = pick_device(compute["device"], compute["threads"])
    teacher = load_teacher(TEACHER_FILE, device)
    precision = choose_teacher_precision(teacher, compute["precision"], device)
    logits = batched(teacher, images.images, params["teacher"]["batch_size"], desc="teacher heldout")
    save_split(HELDOUT_FILE, Split(images.images, logits.argmax(1), images.files))
    truth = float((logits.argmax(1) == images.labels).float().mean())
    print(f"heldout: {len(images)} images (pool ranks {data['max_size']}-{stop - 1}) labeled by the "
          f"teacher in {precision} (it agrees with the true labels on {truth:.3f}) -> {HELDOUT_FILE}",
          file=sys.stderr)
    clock.save()


if __name__ == "__main__":
    main()

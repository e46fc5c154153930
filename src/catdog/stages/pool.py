"""Stage `pool`: cache the unlabeled pool of `data.size` images for this run.

The pool of size n is the first n pool ranks of data/prepared/index.csv, so pools of
different sizes are nested and class-balanced. Only this stage (and what follows it)
reruns for `dvc exp run -S data.size=...`.
"""

from __future__ import annotations

import sys

from catdog.cache import POOL_FILE, RAW_IMAGES, save_split
from catdog.decode_splits import pool_rows, read_index, rows_split
from catdog.params import load_or_exit
from catdog.stage_time import StageClock


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("pool")
    data = load_or_exit()["data"]
    rows = pool_rows(read_index(), data["size"], "data.size")
    pool = rows_split(rows, RAW_IMAGES.parent, data["image_size"], "pool")
    save_split(POOL_FILE, pool)
    cats = int((pool.labels == 0).sum())
    print(f"pool: {len(pool)} unlabeled images ({cats} cats, {len(pool) - cats} dogs) in {POOL_FILE}",
          file=sys.stderr)
    clock.save()


if __name__ == "__main__":
    main()

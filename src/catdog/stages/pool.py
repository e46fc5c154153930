"""Stage `pool`: cache the unlabeled pool of `data.size` images for this run.

The pool of size n is the first n pool ranks of data/prepared/index.csv, so pools of
different sizes are nested and class-balanced. Only this stage (and what follows it)
reruns for `dvc exp run -S data.size=...`.
"""

from __future__ import annotations

import sys

import pandas as pd

from catdog.cache import INDEX_FILE, POOL_FILE, RAW_IMAGES, save_split
from catdog.decode_splits import split_tensors
from catdog.params import load_or_exit
from catdog.stage_time import StageClock


def pool_files(index: pd.DataFrame, size: int) -> list[str]:
    """The files of the pool of `size` images: the first `size` pool ranks."""
    return index[index["split"] == "pool"].sort_values("rank").head(size)["file"].tolist()


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("pool")
    data = load_or_exit()["data"]
    if not INDEX_FILE.is_file():
        raise SystemExit(f"error: {INDEX_FILE} not found: run the prepare stage first")
    index = pd.read_csv(INDEX_FILE)
    available = int((index["split"] == "pool").sum())
    if data["size"] > available:
        raise SystemExit(
            f"error: data.size={data['size']} exceeds the {available:,} unlabeled images available "
            f"(allowed 1..{available})"
        )
    pool = split_tensors(index, "pool", RAW_IMAGES.parent, data["image_size"], limit=data["size"])
    save_split(POOL_FILE, pool)
    cats = int((pool.labels == 0).sum())
    print(f"pool: {len(pool)} unlabeled images ({cats} cats, {len(pool) - cats} dogs) in {POOL_FILE}",
          file=sys.stderr)
    clock.save()


if __name__ == "__main__":
    main()

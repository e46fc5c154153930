"""Decode image files into the uint8 cache tensors (catdog.cache), on every core.

Used by the data stages that build caches: prepare (test/labeled/val), pool (the run's pool)
teacher_logits (the largest pool, data.max_size) and heldout (pool ranks past it).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from catdog.cache import INDEX_FILE, Split
from catdog.images import decode
from catdog.progress_bar import bar


def _decode_ok(args: tuple[str, int]) -> np.ndarray:
    return decode(*args)


def parallel_map(fn, items: list, desc: str) -> list:
    """fn over items on every core, in order, with a progress bar."""
    workers = max(1, min(len(os.sched_getaffinity(0)), 16))
    if workers == 1 or len(items) < 64:
        return [fn(x) for x in bar(items, desc=desc, unit="img")]
    with ProcessPoolExecutor(workers) as pool:
        return list(bar(pool.map(fn, items, chunksize=64), total=len(items), desc=desc, unit="img"))


def decode_many(root: Path, files: list[str], size: int, desc: str) -> torch.Tensor:
    """uint8 [N, 3, size, size] of the given files (already known to decode)."""
    arrays = parallel_map(_decode_ok, [(str(root / f), size) for f in files], desc)
    if not arrays:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def read_index() -> pd.DataFrame:
    """data/prepared/index.csv (the prepare stage's list of usable photos); one-line error if absent."""
    if not INDEX_FILE.is_file():
        raise SystemExit(f"error: {INDEX_FILE} not found: run the prepare stage first")
    return pd.read_csv(INDEX_FILE)


def pool_rows(index: pd.DataFrame, stop: int, key: str, start: int = 0) -> pd.DataFrame:
    """Pool ranks [start, stop) of the index, in rank order; one-line error naming `key` (the
    param that asked for them) when the index holds fewer than `stop` pool images."""
    rows = index[index["split"] == "pool"].sort_values("rank")
    if stop > len(rows):
        raise SystemExit(f"error: {key}={stop} exceeds the {len(rows):,} unlabeled images available "
                         f"(allowed 1..{len(rows)})")
    return rows.iloc[start:stop]


def split_tensors(index: pd.DataFrame, name: str, root: Path, size: int, limit: int | None = None
                  ) -> Split:
    """Decode the images of split `name` (first `limit` ranks) into a Split."""
    return rows_split(index[index["split"] == name].sort_values("rank").head(limit), root, size, name)


def rows_split(rows: pd.DataFrame, root: Path, size: int, desc: str) -> Split:
    """Decode the images of index rows (file, label) into a Split, in row order."""
    files = rows["file"].tolist()
    images = decode_many(root, files, size, desc)
    return Split(images=images, labels=torch.tensor(rows["label"].to_numpy(), dtype=torch.int64),
                 files=files)

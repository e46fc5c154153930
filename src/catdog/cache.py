"""The decoded image cache that every training and evaluation stage reads.

One file per split, written by `prepare` (test, labeled, val) and `pool` (the
unlabeled pool of `data.size` images): a dict saved with torch.save holding
  images: uint8 tensor [N, 3, S, S] (RGB, S = data.image_size)
  labels: int64 tensor [N] (0 = Cat, 1 = Dog; kept for the pool too, never used to train on it)
  files:  list of N source paths relative to data/raw
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from catdog.atomic import save_torch

RAW_IMAGES = Path("data/raw/PetImages")  # the photos, as fetched: PetImages/{Cat,Dog}
PREPARED_DIR = Path("data/prepared")
INDEX_FILE = PREPARED_DIR / "index.csv"  # every usable photo: file, label, split, rank, sha256, dhash
POOL_FILE = Path("data/pool/pool.pt")
HELDOUT_FILE = Path("data/teacher/heldout.pt")  # unlabeled images past every pool, labeled by the teacher


@dataclass
class Split:
    """Images and labels of one split, as uint8 tensors."""

    images: torch.Tensor
    labels: torch.Tensor
    files: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def split_path(name: str) -> Path:
    """Path of a split's cache file: test, labeled, val or pool."""
    return POOL_FILE if name == "pool" else PREPARED_DIR / f"{name}.pt"


def save_split(path: str | Path, split: Split) -> None:
    save_torch(path, {"images": split.images, "labels": split.labels, "files": list(split.files)})


def load_split(name_or_path: str | Path) -> Split:
    """Load a split by name (test, labeled, val, pool) or by path; mmap keeps memory bounded."""
    path = Path(name_or_path)
    if path.suffix != ".pt":
        path = split_path(str(name_or_path))
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: run `dvc repro` (the prepare and pool stages) first")
    blob = torch.load(path, mmap=True, weights_only=True)
    return Split(images=blob["images"], labels=blob["labels"], files=list(blob["files"]))

"""Deterministic, class-balanced assignment of images to test / labeled / val / pool.

Each class is shuffled once with the seed; the first test/2 images of each class go to
test, the next labeled/2 to labeled, the next val/2 to val, and the rest to the pool.
The pool is ranked by alternating Cat and Dog, so the pool of size n is the first n
ranks: pools are nested (3000 in 6000 in 10000) and balanced by construction, and the
fixed splits never depend on the pool size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIXED = ("test", "labeled", "val")


@dataclass(frozen=True)
class Assignment:
    """split[i] and rank[i] (position within that split) for the i-th input item."""

    split: list[str]
    rank: list[int]


def assign_splits(labels: list[int], sizes: dict[str, int], seed: int) -> Assignment:
    """Assign items (given by label, 0 or 1, in a stable order) to splits; see module docstring."""
    rng = np.random.default_rng(seed)
    split = ["pool"] * len(labels)
    rank = [0] * len(labels)
    pool_by_class: list[list[int]] = []
    for cls in (0, 1):
        members = [i for i, y in enumerate(labels) if y == cls]
        order = [members[j] for j in rng.permutation(len(members))]
        start = 0
        for name in FIXED:
            take = sizes[name] // 2
            for r, i in enumerate(order[start : start + take]):
                split[i], rank[i] = name, r * 2 + cls
            start += take
        pool_by_class.append(order[start:])
    pool_order = _interleave(pool_by_class[0], pool_by_class[1])
    for r, i in enumerate(pool_order):
        rank[i] = r
    return Assignment(split=split, rank=rank)


def _interleave(a: list[int], b: list[int]) -> list[int]:
    """a0 b0 a1 b1 ... then whatever remains of the longer list."""
    out = [x for pair in zip(a, b, strict=False) for x in pair]
    n = min(len(a), len(b))
    return out + a[n:] + b[n:]


def required(sizes: dict[str, int]) -> dict[int, int]:
    """Images needed per class for the fixed splits."""
    per_class = sum(sizes[name] // 2 for name in FIXED)
    return {0: per_class, 1: per_class}

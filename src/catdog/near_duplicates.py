"""Near-duplicate photos (re-encoded, resized, lightly edited copies) by a 64-bit difference hash.

dHash (Krawetz, "Kind of Like That", 2013; the `dhash` of the imagehash package): the image in
grayscale, resized to 9x8 with Lanczos, one bit per horizontal neighbour pair (right brighter
than left). Copies of one photo land within a few bits of each other; unrelated photos are
about 32 bits apart. Written here rather than taken from imagehash because it is ten lines on
PIL and numpy, which the project already needs, while imagehash would add SciPy and PyWavelets.

`prepare` keeps the first image (in its stable file order) and drops every later image within
`data.near_duplicate_bits` bits of an image already kept, before the split, so that no copy of
a test photo is in training.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_CHUNK = 2048  # rows of the pairwise-distance matrix computed at a time (2048 x N uint64)


def dhash(rgb: np.ndarray) -> int:
    """64-bit dHash of an RGB uint8 [H, W, 3] array."""
    gray = Image.fromarray(rgb).convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()  # right brighter than left
    return int(np.packbits(bits).view(">u8")[0])


def distance(a: int, b: int) -> int:
    """Hamming distance between two hashes (bits that differ)."""
    return (a ^ b).bit_count()


def close_pairs(hashes: list[int], max_bits: int) -> list[tuple[int, int, int]]:
    """(i, j, distance) for every i < j whose hashes differ in at most max_bits bits."""
    h = np.array(hashes, dtype=np.uint64)
    pairs = []
    for start in range(0, len(h), _CHUNK):
        block = h[start : start + _CHUNK]
        bits = np.bitwise_count(block[:, None] ^ h[None, :])
        rows, cols = np.nonzero(bits <= max_bits)
        for i, j in zip(rows + start, cols, strict=True):
            if i < j:
                pairs.append((int(i), int(j), int(bits[i - start, j])))
    return pairs


def later_copies(hashes: list[int], max_bits: int) -> dict[int, tuple[int, int]]:
    """{j: (i, distance)}: item j is dropped as a copy of the kept item i < j (nearest, then first).

    Greedy in order, so a chain a~b~c with a and c far apart drops b only: every dropped item is
    within max_bits of a kept one, and no two kept items are.
    """
    if max_bits < 0:
        return {}
    near: dict[int, list[tuple[int, int]]] = {}
    for i, j, d in close_pairs(hashes, max_bits):
        near.setdefault(j, []).append((d, i))
    dropped: dict[int, tuple[int, int]] = {}
    for j in sorted(near):
        kept = [(d, i) for d, i in near[j] if i not in dropped]
        if kept:
            d, i = min(kept)
            dropped[j] = (i, d)
    return dropped

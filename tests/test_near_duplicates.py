"""Near-duplicate detection: copies of a photo are found, distinct photos are not, chains stop."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from catdog.near_duplicates import close_pairs, dhash, distance, later_copies


def _photos(shared_zip: Path, n: int) -> list[Image.Image]:
    with zipfile.ZipFile(shared_zip) as zf:
        return [Image.open(io.BytesIO(zf.read(f"PetImages/Cat/{k}.jpg"))).convert("RGB")
                for k in range(n)]


def _reencode(im: Image.Image, side: int, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    im.resize((side, side)).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB").resize(im.size))


def test_copies_are_close_and_distinct_photos_far(shared_zip: Path) -> None:
    photos = _photos(shared_zip, 30)
    hashes = [dhash(np.asarray(p)) for p in photos]
    for p, h in zip(photos[:5], hashes[:5], strict=True):
        assert distance(h, dhash(_reencode(p, 120, 50))) <= 3  # resized, re-encoded
        assert distance(h, dhash(np.asarray(ImageEnhance.Brightness(p).enhance(1.2)))) <= 3
    apart = [distance(a, b) for i, a in enumerate(hashes) for b in hashes[:i]]
    assert min(apart) > 8 and 24 < np.mean(apart) < 40  # unrelated photos: ~32 bits apart


def test_close_pairs_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    base = [int(x) for x in rng.integers(0, 2**63, size=300, dtype=np.int64)]
    hashes = base + [h ^ (1 << int(b)) for h, b in zip(base[:40], rng.integers(0, 63, 40), strict=True)]
    got = close_pairs(hashes, 3)
    want = [(i, j, distance(hashes[i], hashes[j])) for j in range(len(hashes)) for i in range(j)
            if distance(hashes[i], hashes[j]) <= 3]
    assert sorted(got) == sorted(want) and len(got) >= 40


def test_later_copies_keeps_the_first_and_does_not_chain() -> None:
    a = 0
    b = a ^ 0b111              # 3 bits from a
    c = b ^ (0b111 << 8)       # 3 bits from b, 6 from a
    far = (1 << 64) - 1
    dropped = later_copies([a, b, c, far], 3)
    assert dropped == {1: (0, 3)}  # b goes; c stays, as its only close neighbour b is gone
    assert later_copies([a, b, c], -1) == {}

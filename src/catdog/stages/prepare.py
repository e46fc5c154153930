"""Stage `prepare`: check every photo, drop duplicates, split, and cache test/labeled/val.

Every file under data/raw/PetImages/{Cat,Dog} is decoded fully. Anything unusable
(empty, truncated, corrupt, non-image, unsupported, huge) is skipped and listed with
its reason in data/prepared/rejected.csv; exact duplicates (same bytes) are kept once, and so
are near-duplicates (a dHash within data.near_duplicate_bits bits: catdog.near_duplicates).
The split (see catdog.splits) is written to data/prepared/index.csv with columns
file, label, split, rank, sha256, dhash; the test, labeled and val images are cached as uint8
tensors (catdog.cache). The pool is cached by the `pool` stage, the only data stage
that reads data.size.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from catdog import CLASSES
from catdog.atomic import save_text
from catdog.cache import INDEX_FILE, PREPARED_DIR, RAW_IMAGES, save_split, split_path
from catdog.decode_splits import parallel_map, split_tensors
from catdog.images import BadImage, decode, file_sha256
from catdog.near_duplicates import dhash, later_copies
from catdog.params import load_or_exit
from catdog.splits import FIXED, assign_splits, required
from catdog.stage_time import StageClock

REJECTED_FILE = PREPARED_DIR / "rejected.csv"


class Photo(NamedTuple):
    """A usable, byte-unique image: one row of index.csv before the split."""

    file: str
    label: int
    sha256: str
    dhash: int


def list_files(raw: Path = RAW_IMAGES) -> list[tuple[str, int]]:
    """(path relative to raw's parent, label) for every file under raw/{Cat,Dog}, in a stable order."""
    if not raw.is_dir():
        raise SystemExit(f"error: {raw} not found: run the fetch stage first (dvc repro fetch)")
    out = []
    for label, cls in enumerate(CLASSES):
        folder = raw / cls
        files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
        files.sort(key=lambda p: (len(p.stem), p.stem, p.name))  # numeric names in numeric order
        out += [(str(p.relative_to(raw.parent)), label) for p in files]
    return out


def _check(args: tuple[str, int]) -> tuple[str, int, str]:
    """(sha256, dhash, "") for a usable image, ("", 0, reason) otherwise. Runs in worker processes."""
    path, size = args
    try:
        data = Path(path).read_bytes()
        rgb = decode(path, size)
    except BadImage as err:
        return "", 0, str(err)
    except OSError as err:
        return "", 0, f"unreadable: {err.strerror or err}"
    return file_sha256(data), dhash(rgb), ""


def build_index(files: list[tuple[str, int]], root: Path, size: int, sizes: dict[str, int],
                seed: int, near_bits: int = -1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check, dedupe (exact bytes; dHash within near_bits bits, -1: off) and split.

    Returns (index, rejected) tables.
    """
    checked = parallel_map(_check, [(str(root / f), size) for f, _ in files], "check")
    rejected, unique, seen = [], [], {}
    for (file, label), (digest, hashed, reason) in zip(files, checked, strict=True):
        if reason:
            rejected.append((file, reason))
        elif digest in seen:
            rejected.append((file, f"duplicate of {seen[digest]}"))
        else:
            seen[digest] = file
            unique.append(Photo(file, label, digest, hashed))
    copies = later_copies([p.dhash for p in unique], near_bits)
    for j, (i, bits) in sorted(copies.items()):
        rejected.append((unique[j].file, f"near-duplicate of {unique[i].file} (dHash {bits} bits apart)"))
    kept = [p for j, p in enumerate(unique) if j not in copies]
    need = required(sizes)
    for label, cls in enumerate(CLASSES):
        have = sum(1 for p in kept if p.label == label)
        if have < need[label]:
            raise SystemExit(
                f"error: only {have} usable {cls} images, but data.test+data.labeled+data.val "
                f"need {need[label]} per class"
            )
    assignment = assign_splits([p.label for p in kept], sizes, seed)
    index = pd.DataFrame({
        "file": [p.file for p in kept],
        "label": [p.label for p in kept],
        "split": assignment.split,
        "rank": assignment.rank,
        "sha256": [p.sha256 for p in kept],
        "dhash": [f"{p.dhash:016x}" for p in kept],
    }).sort_values(["split", "rank"], kind="stable").reset_index(drop=True)
    return index, pd.DataFrame(rejected, columns=["file", "reason"])


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("prepare")
    data = load_or_exit()["data"]
    sizes = {name: data[name] for name in FIXED}
    root = RAW_IMAGES.parent
    index, rejected = build_index(list_files(), root, data["image_size"], sizes, data["seed"],
                                  data["near_duplicate_bits"])
    PREPARED_DIR.mkdir(parents=True, exist_ok=True)
    save_text(REJECTED_FILE, rejected.to_csv(index=False))
    for name in FIXED:
        save_split(split_path(name), split_tensors(index, name, root, data["image_size"]))
    save_text(INDEX_FILE, index.to_csv(index=False))  # last: its presence means prepare finished
    counts = index["split"].value_counts().to_dict()
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in (*FIXED, "pool"))
    reasons = rejected["reason"].str.replace(r" of .*", "", regex=True).value_counts().to_dict()
    skipped = ", ".join(f"{n} {r}" for r, n in reasons.items()) or "none"
    print(f"prepare: {summary}; skipped {len(rejected)} ({skipped}); list in {REJECTED_FILE}",
          file=sys.stderr)
    clock.save()


if __name__ == "__main__":
    main()

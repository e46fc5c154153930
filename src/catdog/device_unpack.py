"""The kit on the GPU box (docs/device.md): each call's part checked and stashed, then, for the run,
unpacked into the run folders the device driver (catdog.device_run) trains in.

`stash` checks a carried part folder (SHA256SUMS) and keeps it where it outlives the call while the
box stays warm. `prepare` unpacks the stashed JPEGs, joins the ImageNet weights
(catdog.weight_halves), decodes the splits once at data.image_size (catdog.decode_splits, as the
data stages do: before any CUDA call, since decoding forks), and lays out one folder per pool size
as DVC's workspace: params.yaml (the profile merged over the committed params.yaml,
catdog.profiles, then the run's settings), data/ and models/teacher.pt, linked to the decoded
files. Call 1's part is used only with the call 2 of its own kit (the kit id).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch
import yaml

from catdog import weight_halves
from catdog.cache import HELDOUT_FILE, POOL_FILE, Split, save_split, split_path
from catdog.decode_splits import rows_split
from catdog.device_kit import (
    IMAGE_LIST,
    IMAGES,
    KIT_ID,
    LOGITS,
    MANIFEST,
    PARAMS,
    PARTS,
    PROFILE,
    SUMS,
    TEACHER,
    WEIGHTS_HIGH,
    WEIGHTS_LOW,
    sha256,
)
from catdog.methods import METHODS
from catdog.params import read_yaml, validate
from catdog.profiles import load_profile, params_for
from catdog.teachers import LOGITS_FILE, TEACHER_FILE

RUN_SETTINGS = {"compute.checkpoint_every": 0}  # nothing resumes on the box: no checkpoint writes


def log(message: str) -> None:
    print(f"device_run [{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def verify(part: Path) -> list[str]:
    """What is wrong with a kit part folder: files missing or not matching SHA256SUMS ([]: fine)."""
    sums = part / SUMS
    if not sums.is_file():
        return [f"{sums} missing"]
    problems = []
    for line in sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        path = part / name.strip()
        if not path.is_file():
            problems.append(f"{name} missing")
        elif sha256(path) != digest:
            problems.append(f"{name} damaged (sha256)")
    return problems


def stash(kit: Path, store: Path) -> list[str]:
    """Check each part folder this call carried (kit/call1, kit/call2) and keep it in `store`,
    which outlives the call while the box stays warm; returns the parts stashed now."""
    kept = []
    for name in PARTS:
        part = kit / name
        if not part.is_dir():
            continue
        problems = verify(part)
        if problems:
            log(f"{name} refused: {'; '.join(problems[:3])}: carry it again")
            continue
        shutil.rmtree(store / name, ignore_errors=True)
        shutil.copytree(part, store / name)
        kept.append(name)
        log(f"{name} checked (sha256) and stashed in {store / name}")
    return kept


def unpack_images(part: Path, raw: Path) -> int:
    """Write the JPEGs of a part's images.bin under raw/ (raw/PetImages/...); returns how many."""
    listing = json.loads((part / IMAGE_LIST).read_text())
    with (part / IMAGES).open("rb") as fh:
        for name, size in listing:
            path = raw / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(fh.read(size))
    return len(listing)


def restore_weights(kit: Path, manifest: dict, torch_home: Path, exact: bool) -> str:
    """torchvision's ImageNet MobileNetV2 file in torch_home (TORCH_HOME set to it), from the high
    half and, with call 1's part (`exact`), the low half; returns which."""
    high = weight_halves.load(kit / PARTS[1] / WEIGHTS_HIGH)
    low = weight_halves.load(kit / PARTS[0] / WEIGHTS_LOW) if exact else None
    state = weight_halves.join(high, low)
    if low is not None and weight_halves.digest(state) != manifest["weights"]["digest"]:
        raise SystemExit("error: the ImageNet weights' halves do not rebuild them: build the kit again")
    dest = torch_home / "hub" / "checkpoints" / manifest["weights"]["file"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, dest)
    os.environ["TORCH_HOME"] = str(torch_home)
    return "exact" if low is not None else "bfloat16 (call 1's low half missing)"


def decode(rows: list[list], raw: Path, size: int, desc: str) -> Split:
    """The uint8 cache of [file, label] rows, decoded as the data stages decode."""
    return rows_split(pd.DataFrame(rows, columns=["file", "label"]), raw, size, desc)


@dataclass
class Setup:
    """The run folders, their params, and the labeled count (the guard's estimates need it)."""

    folders: dict[str, Path]  # name (pool size) -> folder
    params: dict[str, dict]
    labeled: int


def prepare(kit: Path, work: Path, extra: dict, record: dict) -> Setup:
    """Unpack, decode and lay out the run folders (before any CUDA call: decoding forks)."""
    manifest = json.loads((kit / PARTS[1] / MANIFEST).read_text())
    profile = load_profile(str(kit / PARTS[1] / PROFILE), base=kit / PARTS[1] / PARAMS)
    base = read_yaml((kit / PARTS[1] / PARAMS).read_text())
    shutil.rmtree(work, ignore_errors=True)
    raw, data = work / "raw", work / "data"
    start = time.monotonic()
    parts = [name for name in PARTS if (kit / name).is_dir() and not verify(kit / name)
             and (kit / name / KIT_ID).read_text().strip() == manifest["kit_id"]]
    if PARTS[1] not in parts:
        raise SystemExit(f"error: {kit / PARTS[1]} is missing or damaged: {verify(kit / PARTS[1])}")
    if (kit / PARTS[0]).is_dir() and PARTS[0] not in parts:
        log(f"{kit / PARTS[0]} is left out: damaged, or of another kit than call 2's")
    images = sum(unpack_images(kit / name, raw) for name in parts)
    weights = restore_weights(kit, manifest, work / "torch", PARTS[0] in parts)
    low = manifest["call1_pool_ranks"][0]  # call 1 holds the pool ranks from here up
    sizes = [s for s in manifest["sizes"] if PARTS[0] in parts or s <= low]
    record["kit"] = {"profile": manifest["profile"], "parts": parts, "images": images,
                     "imagenet_weights": weights, "index_sha256": manifest["index_sha256"],
                     "sizes": sizes, "missing_sizes": [s for s in manifest["sizes"] if s not in sizes],
                     "unpack_s": round(time.monotonic() - start, 2)}
    log(f"kit {manifest['profile']}: parts {parts}, {images} JPEGs, ImageNet weights {weights}, "
        f"pool sizes {sizes}" + (f" ({record['kit']['missing_sizes']} need call 1)"
                                 if record["kit"]["missing_sizes"] else ""))
    params = {str(s): params_for(profile, s, base, {**RUN_SETTINGS, **extra}) for s in sizes}
    for tree in params.values():
        validate(tree)
    image_size = params[str(sizes[0])]["data"]["image_size"]
    start = time.monotonic()
    splits = manifest["splits"]
    data.mkdir(parents=True)
    for name in ("labeled", "val", "heldout"):
        save_split(data / f"{name}.pt", decode(splits[name], raw, image_size, name))
    pool = decode(splits["pool"][:sizes[0]], raw, image_size, "pool")
    for s in sizes:
        save_split(data / f"pool-{s}.pt", Split(pool.images[:s].clone(), pool.labels[:s].clone(),
                                                pool.files[:s]))
    record["data"] = {"decode_s": round(time.monotonic() - start, 2), "image_size": image_size,
                      "images": {name: len(splits[name]) for name in ("labeled", "val", "heldout")}
                      | {"pool": sizes[0]}}
    log(f"decoded {record['data']['images']} at {image_size} px in {record['data']['decode_s']} s")
    folders = {}
    for s in sizes:
        folder = folders.setdefault(str(s), work / "runs" / str(s))
        links = {split_path("labeled"): data / "labeled.pt", split_path("val"): data / "val.pt",
                 POOL_FILE: data / f"pool-{s}.pt", HELDOUT_FILE: data / "heldout.pt",
                 LOGITS_FILE: kit / PARTS[1] / LOGITS, TEACHER_FILE: kit / PARTS[1] / TEACHER}
        for dest, src in links.items():
            (folder / dest).parent.mkdir(parents=True, exist_ok=True)
            (folder / dest).symlink_to(src.resolve())
        (folder / "params.yaml").write_text(yaml.safe_dump(params[str(s)], sort_keys=False))
    record["profile"] = manifest["profile"]
    record["methods"] = [m for m in (manifest["methods"] or list(METHODS)) if m in METHODS]
    return Setup(folders=folders, params=params, labeled=len(splits["labeled"]))

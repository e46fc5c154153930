"""Shared fixtures: the real photo zip from ../shared and small real-photo splits built from it."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from catdog.cache import Split

REPO = Path(__file__).resolve().parents[1]
SHARED_ZIP = REPO.parent / "shared" / "data" / "petimages-180.zip"


def committed_params() -> dict:
    """params.yaml as committed at HEAD (the full-scale defaults), not the workspace copy: after
    `scripts/quick-run.sh` the workspace holds the quick profile's values, which must not leak
    into the tests. Outside a git checkout, the file itself."""
    done = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=REPO, capture_output=True,
                          text=True)
    text = done.stdout if done.returncode == 0 else (REPO / "params.yaml").read_text()
    return yaml.safe_load(text)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_zip() -> Path:
    """The 23,000-photo PetImages zip laid beside the checkout (never copied into the repo)."""
    if not SHARED_ZIP.is_file():
        pytest.fail(f"{SHARED_ZIP} is missing: the tests use the shared PetImages zip beside the repo")
    return SHARED_ZIP


def read_photos(zip_path: Path, cls: str, numbers: range, size: int) -> list[np.ndarray]:
    """Decode PetImages/<cls>/<n>.jpg for each n into uint8 HxWx3 arrays of side `size`."""
    out = []
    with zipfile.ZipFile(zip_path) as zf:
        for n in numbers:
            with Image.open(io.BytesIO(zf.read(f"PetImages/{cls}/{n}.jpg"))) as im:
                out.append(np.asarray(im.convert("RGB").resize((size, size))))
    return out


def slice_zip(full: Path, dest: Path, per_class: int) -> Path:
    """`full`'s PetImages/README.txt and photos 0 .. per_class-1 of each class, in its layout (a
    number the source lacks, such as Cat/666, is left out)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    wanted = ["PetImages/README.txt"] + [f"PetImages/{cls}/{n}.jpg" for cls in ("Cat", "Dog")
                                         for n in range(per_class)]
    with zipfile.ZipFile(full) as src, zipfile.ZipFile(dest, "w") as dst:
        have = set(src.namelist())
        for name in wanted:
            if name in have:
                dst.writestr(name, src.read(name))
    return dest


def make_split(zip_path: Path, per_class: int, size: int = 64, offset: int = 0) -> Split:
    """A class-balanced Split of real photos: `per_class` cats then as many dogs."""
    numbers = range(offset, offset + per_class)
    arrays = read_photos(zip_path, "Cat", numbers, size) + read_photos(zip_path, "Dog", numbers, size)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([0] * per_class + [1] * per_class)
    files = [f"PetImages/{c}/{n}.jpg" for c in ("Cat", "Dog") for n in numbers]
    return Split(images=images, labels=labels, files=files)


def save_training_splits(zip_path: Path) -> None:
    """The splits a training stage reads, in the current directory, from real photos at 48 px:
    pool 32, labeled 16, val 12, and the heldout stage's 12 (true labels as the teacher's)."""
    from catdog.cache import HELDOUT_FILE, save_split, split_path

    for name, per_class, offset in (("pool", 16, 300), ("labeled", 8, 400), ("val", 6, 500)):
        save_split(split_path(name), make_split(zip_path, per_class, size=48, offset=offset))
    save_split(HELDOUT_FILE, make_split(zip_path, 6, size=48, offset=600))


@pytest.fixture(scope="session")
def tiny_split(shared_zip: Path) -> Split:
    """16 real photos (8 cats, 8 dogs) at 64 px."""
    return make_split(shared_zip, per_class=8, size=64)

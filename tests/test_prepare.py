"""prepare on real photos mixed with every kind of bad file: each is skipped with its reason."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import committed_params
from PIL import Image

from catdog.cache import load_split
from catdog.images import BadImage, decode

REPO = Path(__file__).resolve().parents[1]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is never needed to reject it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) \
        + chunk(b"IEND", b"")


def _write_real(zf: zipfile.ZipFile, cls: str, n: int, dest: Path) -> bytes:
    data = zf.read(f"PetImages/{cls}/{n}.jpg")
    (dest / f"{n}.jpg").write_bytes(data)
    return data


@pytest.fixture()
def raw_tree(tmp_path: Path, shared_zip: Path) -> Path:
    """data/raw/PetImages with 20 real cats and dogs plus one of each kind of bad file."""
    root = tmp_path / "data" / "raw" / "PetImages"
    cat, dog = root / "Cat", root / "Dog"
    cat.mkdir(parents=True)
    dog.mkdir(parents=True)
    with zipfile.ZipFile(shared_zip) as zf:
        for n in range(20):
            data = _write_real(zf, "Cat", n, cat)
            _write_real(zf, "Dog", n, dog)
        (cat / "dup_of_19.jpg").write_bytes(data)  # exact duplicate of Cat/19.jpg
        copy = Image.open(io.BytesIO(zf.read("PetImages/Cat/5.jpg"))).resize((131, 131))
        copy.save(cat / "resized_5.jpg", quality=60)  # re-encoded, resized copy of Cat/5.jpg
        (dog / "truncated.jpg").write_bytes(zf.read("PetImages/Dog/0.jpg")[:1500])
        def photo(cls: str, n: int) -> Image.Image:  # photos the fixture holds no other copy of
            return Image.open(io.BytesIO(zf.read(f"PetImages/{cls}/{n}.jpg")))
        photo("Dog", 20).convert("CMYK").save(dog / "cmyk.jpg")
        photo("Cat", 20).convert("L").save(cat / "gray.png")
        photo("Cat", 21).convert("RGBA").save(cat / "rgba.png")
        photo("Dog", 21).convert("P").save(dog / "palette.gif")
    (cat / "empty.jpg").write_bytes(b"")
    (cat / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 500)
    (dog / "notes.txt").write_text("not a photo\n")
    (dog / "random.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    (dog / "huge.png").write_bytes(_png_header_only(20000, 20000))
    return tmp_path


def test_decode_converts_odd_modes_to_rgb(raw_tree: Path) -> None:
    raw = raw_tree / "data/raw/PetImages"
    for name in ("Dog/cmyk.jpg", "Cat/gray.png", "Cat/rgba.png", "Dog/palette.gif"):
        array = decode(raw / name, 48)
        assert array.shape == (48, 48, 3) and array.dtype == np.uint8
    gray = decode(raw / "Cat/gray.png", 48)
    assert np.array_equal(gray[..., 0], gray[..., 1])


@pytest.mark.parametrize(
    ("name", "reason"),
    [("Cat/empty.jpg", "empty file"), ("Cat/Thumbs.db", "not an image"),
     ("Dog/notes.txt", "not an image"), ("Dog/random.jpg", "not an image"),
     ("Dog/truncated.jpg", "corrupt image"), ("Dog/huge.png", "image too large")],
)
def test_decode_rejects_bad_files(raw_tree: Path, name: str, reason: str) -> None:
    with pytest.raises(BadImage, match=reason):
        decode(raw_tree / "data/raw/PetImages" / name, 48)


def _run_prepare(cwd: Path, **data: int) -> subprocess.CompletedProcess:
    params = committed_params()
    params["data"].update({"test": 10, "labeled": 8, "val": 6, "size": 10, "image_size": 48, **data})
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, "-m", "catdog.stages.prepare"], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_prepare_skips_lists_and_splits(raw_tree: Path) -> None:
    done = _run_prepare(raw_tree)
    assert done.returncode == 0, done.stderr
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("prepare: 10 test, 8 labeled, 6 val,")
    rejected = pd.read_csv(raw_tree / "data/prepared/rejected.csv")
    reasons = dict(zip(rejected["file"], rejected["reason"], strict=True))
    assert reasons["PetImages/Cat/dup_of_19.jpg"] == "duplicate of PetImages/Cat/19.jpg"
    assert reasons["PetImages/Cat/empty.jpg"] == "empty file"
    assert reasons["PetImages/Dog/truncated.jpg"].startswith("corrupt image")
    assert reasons["PetImages/Dog/huge.png"].startswith("image too large")
    assert {"PetImages/Cat/Thumbs.db", "PetImages/Dog/notes.txt", "PetImages/Dog/random.jpg"} \
        <= set(reasons)
    assert reasons["PetImages/Cat/resized_5.jpg"].startswith(
        "near-duplicate of PetImages/Cat/5.jpg (dHash ")
    assert len(rejected) == 8
    index = pd.read_csv(raw_tree / "data/prepared/index.csv")
    kept = set(index["file"])
    assert {"PetImages/Dog/cmyk.jpg", "PetImages/Cat/gray.png", "PetImages/Cat/rgba.png",
            "PetImages/Dog/palette.gif"} <= kept
    assert index["sha256"].is_unique and index["dhash"].is_unique
    test = load_split(raw_tree / "data/prepared/test.pt")
    assert test.images.shape == (10, 3, 48, 48) and test.images.dtype == torch.uint8
    assert test.labels.tolist().count(0) == 5


def test_prepare_fails_clearly_when_too_few_images(raw_tree: Path) -> None:
    done = _run_prepare(raw_tree, test=40)
    assert done.returncode == 1
    assert "usable Cat images, but data.test+data.labeled+data.val need" in done.stderr
    assert not (raw_tree / "data/prepared/index.csv").exists()


def test_prepare_without_raw_data(tmp_path: Path) -> None:
    done = _run_prepare(tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: data/raw/PetImages not found: run the fetch stage first " \
        "(dvc repro fetch)"


def test_prepare_keeps_near_duplicates_when_off(raw_tree: Path) -> None:
    done = _run_prepare(raw_tree, near_duplicate_bits=-1)
    assert done.returncode == 0, done.stderr
    rejected = pd.read_csv(raw_tree / "data/prepared/rejected.csv")
    assert not rejected["reason"].str.startswith("near-duplicate").any()
    assert "PetImages/Cat/resized_5.jpg" in set(pd.read_csv(raw_tree / "data/prepared/index.csv")["file"])

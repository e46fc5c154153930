"""Split properties on the real 23,000-photo zip: disjoint, nested, balanced, deterministic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import committed_params

from catdog.cache import load_split
from catdog.decode_splits import pool_rows
from catdog.splits import assign_splits
from catdog.teachers import LOGITS_FILE, Teacher, load_logits, save_teacher

REPO = Path(__file__).resolve().parents[1]
SIZES = (3000, 6000, 10000)


def pool_files(index: pd.DataFrame, size: int) -> list[str]:
    """The files of the pool of `size` images, as the pool stage picks them."""
    return pool_rows(index, size, "data.size")["file"].tolist()


def _stage(cwd: Path, name: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", f"catdog.stages.{name}"], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, shared_zip: Path) -> Path:
    """fetch + prepare of the whole shared zip at the reference budget (cache at 32 px: fast)."""
    cwd = tmp_path_factory.mktemp("full")
    params = committed_params()
    params["data"].update({"source": str(shared_zip), "image_size": 32, "size": 300})
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    _stage(cwd, "fetch")
    _stage(cwd, "prepare")
    return cwd


@pytest.fixture(scope="module")
def index(prepared: Path) -> pd.DataFrame:
    return pd.read_csv(prepared / "data/prepared/index.csv")


def test_reference_budget_and_balance(index: pd.DataFrame) -> None:
    counts = index.groupby(["split", "label"]).size().unstack()
    assert counts.loc["test"].tolist() == [2500, 2500]
    assert counts.loc["labeled"].tolist() == [210, 210]
    assert counts.loc["val"].tolist() == [90, 90]
    assert counts.loc["pool"].sum() >= 17_000
    for size in SIZES:
        labels = index.set_index("file").loc[pool_files(index, size), "label"]
        assert abs(int(labels.sum()) - size // 2) <= 1


def test_splits_are_disjoint_by_content(index: pd.DataFrame) -> None:
    assert index["file"].is_unique and index["sha256"].is_unique
    test_hashes = set(index.loc[index["split"] == "test", "sha256"])
    for size in SIZES:
        train_files = set(pool_files(index, size)) | set(
            index.loc[index["split"].isin(["labeled", "val"]), "file"])
        train_hashes = set(index.loc[index["file"].isin(train_files), "sha256"])
        assert not test_hashes & train_hashes
    val = set(index.loc[index["split"] == "val", "sha256"])
    labeled = set(index.loc[index["split"] == "labeled", "sha256"])
    assert not val & labeled


def test_pools_are_nested(index: pd.DataFrame) -> None:
    small, medium, large = (set(pool_files(index, s)) for s in SIZES)
    assert len(small) == 3000 and len(medium) == 6000 and len(large) == 10000
    assert small < medium < large


def test_split_is_seeded(index: pd.DataFrame) -> None:
    labels = index.sort_values("file")["label"].tolist()
    sizes = {"test": 5000, "labeled": 420, "val": 180}
    first = assign_splits(labels, sizes, seed=0)
    assert assign_splits(labels, sizes, seed=0) == first
    other = assign_splits(labels, sizes, seed=1)
    assert other.split != first.split
    # The fixed splits never depend on how large a pool is asked for.
    assert first.split.count("test") == 5000


def test_pool_stage_caches_exactly_the_ranked_files(prepared: Path, index: pd.DataFrame) -> None:
    _stage(prepared, "pool")
    pool = load_split(prepared / "data/pool/pool.pt")
    assert pool.files == pool_files(index, 300)
    assert pool.images.shape == (300, 3, 32, 32)


def test_pool_size_beyond_available_is_refused(prepared: Path, index: pd.DataFrame) -> None:
    params = yaml.safe_load((prepared / "params.yaml").read_text())
    params["data"].update({"size": 30000, "max_size": 30000})
    (prepared / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, "-m", "catdog.stages.pool"], cwd=prepared,
                          capture_output=True, text=True, timeout=120)
    params["data"].update({"size": 300, "max_size": 10000})
    (prepared / "params.yaml").write_text(yaml.safe_dump(params))
    available = int((index["split"] == "pool").sum())
    assert done.returncode == 1
    assert done.stderr.strip() == (f"error: data.size=30000 exceeds the {available:,} unlabeled "
                                   f"images available (allowed 1..{available})")


def test_teacher_logits_cover_the_largest_pool_and_serve_every_nested_one(
        prepared: Path, index: pd.DataFrame) -> None:
    params = yaml.safe_load((prepared / "params.yaml").read_text())
    params["data"]["max_size"] = 300
    params["compute"]["device"] = "cpu"
    (prepared / "params.yaml").write_text(yaml.safe_dump(params))
    teacher = Teacher("efficientnet_lite2", 32)
    torch.manual_seed(0)
    torch.nn.init.normal_(teacher.head.weight, std=0.1)  # a head whose logits differ per image
    save_teacher(prepared / "models/teacher.pt", teacher)
    done = _stage(prepared, "teacher_logits")
    assert "420 labeled, 300 pool" in done.stderr
    labeled = load_split(prepared / "data/prepared/labeled.pt")
    blob = torch.load(prepared / LOGITS_FILE, weights_only=False)
    assert blob["files"] == labeled.files + pool_files(index, 300)
    assert blob["logits"].shape == (720, 2) and blob["precision"] in ("bf16", "fp32")
    # A smaller pool reads its rows by file name: the first 100 ranks are the first 100 pool rows.
    small = load_logits(prepared / LOGITS_FILE, pool_files(index, 100))
    assert torch.equal(small, blob["logits"][420:520])
    # They are the teacher's logits of those very images.
    with torch.inference_mode():
        direct = teacher(labeled.images[:8])
    tolerance = 0.05 if blob["precision"] == "bf16" else 1e-4
    assert torch.allclose(blob["logits"][:8], direct, atol=tolerance)
    # A pool beyond the cached one is refused with the reason, not trained on wrong targets.
    with pytest.raises(SystemExit, match=r"lacks the teacher logits of 1 of 301 images"):
        load_logits(prepared / LOGITS_FILE, pool_files(index, 301))

"""scripts/device/run.sh on the box: each call's kit part is checked (sha256) and stashed for the
next call, a damaged one is refused, and the run waits for call 2's part; the ImageNet weights'
two halves (catdog.weight_halves) rebuild them bit for bit, the high half alone in bfloat16."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from catdog import weight_halves
from catdog.device_kit import KIT_ID, write_sums
from catdog.device_pack import bundle_models, read_bundles
from catdog.models import imagenet_mobilenet_v2, save_model, student

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A tree as the box gets it: scripts/device/run.sh and src/."""
    root = tmp_path / "tree"
    (root / "scripts/device").mkdir(parents=True)
    shutil.copy2(REPO / "scripts/device/run.sh", root / "scripts/device/run.sh")
    (root / "src").symlink_to(REPO / "src")
    return root


def carry(tree: Path, name: str, files: dict[str, bytes]) -> Path:
    """The tree's .device-kit holding one signed part folder, as a call carries it."""
    shutil.rmtree(tree / ".device-kit", ignore_errors=True)
    part = tree / ".device-kit" / name
    part.mkdir(parents=True)
    for file, data in {**files, KIT_ID: b"k1\n"}.items():
        (part / file).write_bytes(data)
    write_sums(part)
    return part


def call(tree: Path, stash: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CATDOG_STASH": str(stash), "OUT": str(out), "PYTHON": sys.executable}
    return subprocess.run(["bash", "scripts/device/run.sh"], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=300)


def test_call1_is_stashed_and_the_run_waits_for_call2(tree: Path, tmp_path: Path) -> None:
    stash, out = tmp_path / "stash", tmp_path / "out"
    carry(tree, "call1", {"images.bin": os.urandom(5000), "images.json": b"[]"})
    done = call(tree, stash, out)
    assert done.returncode == 0, done.stderr
    assert "call1 checked (sha256) and stashed" in done.stdout
    assert "call 2's part is not stashed yet: make call 2 now" in done.stdout
    assert (stash / "call1/images.bin").stat().st_size == 5000


def test_a_damaged_part_is_refused(tree: Path, tmp_path: Path) -> None:
    stash, out = tmp_path / "stash", tmp_path / "out"
    part = carry(tree, "call2", {"manifest.json": b"{}", "images.bin": os.urandom(5000)})
    data = bytearray((part / "images.bin").read_bytes())
    data[100] ^= 0xFF
    (part / "images.bin").write_bytes(bytes(data))
    done = call(tree, stash, out)
    assert done.returncode == 0, done.stderr
    assert "call2 refused: images.bin damaged (sha256): carry it again" in done.stdout
    assert not (stash / "call2").exists() and "not stashed yet" in done.stdout


def test_the_weights_halves_rebuild_them_exactly_or_in_bfloat16(tmp_path: Path) -> None:
    state = imagenet_mobilenet_v2().state_dict()
    high, low = weight_halves.split(state)
    weight_halves.save(tmp_path / "high.xz", high)
    weight_halves.save(tmp_path / "low.xz", low)
    high, low = weight_halves.load(tmp_path / "high.xz"), weight_halves.load(tmp_path / "low.xz")
    joined = weight_halves.join(high, low)
    assert weight_halves.digest(joined) == weight_halves.digest(state)
    assert all(torch.equal(joined[k], v) for k, v in state.items())
    alone = weight_halves.join(high)  # bfloat16 by truncation: the low 16 bits zero
    for key, value in state.items():
        if value.dtype == torch.float32:
            cut = torch.from_numpy(value.numpy().view(np.uint32) & np.uint32(0xFFFF0000)).view(torch.float32)
            assert torch.equal(alone[key], cut), key
            normal = value.abs() >= torch.finfo(torch.float32).tiny  # subnormals lose more
            assert torch.all((alone[key] - value).abs()[normal] < value.abs()[normal] * 2**-7), key
        else:
            assert torch.equal(alone[key], value), key
    assert (tmp_path / "high.xz").stat().st_size < 0.8 * 2 * sum(  # xz: the exponents compress
        v.numel() for v in state.values() if v.dtype == torch.float32)


def test_students_travel_in_bfloat16_bundles_within_the_return_limits(tmp_path: Path) -> None:
    models = {}
    for i in range(3):
        torch.manual_seed(i)
        models[f"10000/m{i}"] = tmp_path / f"m{i}.pt"
        save_model(models[f"10000/m{i}"], student(), method=f"m{i}", image_size=64)
    out = tmp_path / "out"
    out.mkdir()
    # two 4.7 MB students fit one 10 MB file; a second file is not allowed: the third stays out
    assert bundle_models(models, out, limit=10 * 2**20, max_files=1) == ["10000/m2"]
    assert [p.name for p in out.iterdir()] == ["models-1.pt"]
    back = read_bundles(out)
    original = torch.load(models["10000/m0"], weights_only=True)["state_dict"]
    state = back["10000/m0"]["state_dict"]
    assert torch.equal(state["features.0.0.weight"], original["features.0.0.weight"].bfloat16().float())
    assert torch.equal(state["features.0.1.running_var"], original["features.0.1.running_var"])
    assert back["10000/m1"]["method"] == "m1" and back["10000/m1"]["image_size"] == 64

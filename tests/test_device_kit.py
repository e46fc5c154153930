"""The h200 profile's kit at full size: both device calls fit the 64 MiB a call may carry with the
working tree. The split is the prepare stage's own, over all 23,000 shared photos (about 30 s); the
teacher's outputs stand in at their real sizes (the kit only copies them)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import committed_params

from catdog.cache import HELDOUT_FILE, INDEX_FILE, split_path
from catdog.device_kit import LIMIT_BYTES, PARTS, build, run_params, tree_bytes
from catdog.profiles import load_profile
from catdog.stages.prepare import build_index, list_files
from catdog.teachers import LOGITS_FILE, TEACHER_FILE, save_logits

REPO = Path(__file__).resolve().parents[1]
WHEEL_ALLOWANCE = 1 << 20  # the lightly wheel the kit carries is 0.3 MB


def lazy(shape: tuple[int, ...]) -> torch.Tensor:
    """A uint8 tensor of `shape` stored as one element (the kit reads the shape only)."""
    return torch.zeros(1, dtype=torch.uint8).expand(*shape)


@pytest.fixture(scope="module")
def prep(tmp_path_factory: pytest.TempPathFactory, shared_zip: Path) -> tuple[Path, Path]:
    """(a prep folder for the h200 profile over every shared photo, params.yaml as committed)."""
    root = tmp_path_factory.mktemp("h200kit")
    base = root / "params.yaml"
    base.write_text(yaml.safe_dump(committed_params(), sort_keys=False))
    profile = load_profile("h200", base=base, root=REPO / "profiles")
    params = run_params(profile, base.read_text(), 10000)
    data = params["data"]
    prep = root / "prep"
    with zipfile.ZipFile(shared_zip) as zf:
        zf.extractall(prep / "data/raw")
    raw = prep / "data/raw/PetImages"
    sizes = {name: data[name] for name in ("test", "labeled", "val")}
    index, _ = build_index(list_files(raw), raw.parent, data["image_size"], sizes, data["seed"],
                           data["near_duplicate_bits"])
    (prep / INDEX_FILE).parent.mkdir(parents=True)
    index.to_csv(prep / INDEX_FILE, index=False)
    pool = index[index["split"] == "pool"].sort_values("rank")["file"].tolist()
    labeled = index[index["split"] == "labeled"].sort_values("rank")["file"].tolist()
    side = data["image_size"]
    held = pool[data["max_size"]:data["max_size"] + data["heldout"]]
    (prep / HELDOUT_FILE).parent.mkdir(parents=True)
    torch.save({"images": lazy((len(held), 3, side, side)),
                "labels": torch.zeros(len(held), dtype=torch.long), "files": held}, prep / HELDOUT_FILE)
    files = labeled + pool[:data["max_size"]]
    save_logits(prep / LOGITS_FILE, files, torch.randn(len(files), 2), "bf16")
    (prep / TEACHER_FILE).parent.mkdir(parents=True)
    (prep / TEACHER_FILE).write_bytes(b"t" * 16_384)  # the real one: a 12 kB head
    torch.save({"images": lazy((data["test"], 3, side, side)), "labels": torch.zeros(data["test"]),
                "files": []}, prep / split_path("test"))
    return prep, base


def test_both_calls_of_the_h200_kit_fit_with_the_working_tree(
        prep: tuple[Path, Path], tmp_path: Path) -> None:
    folder, base = prep
    wheel = tmp_path / "lightly-0-py3-none-any.whl"
    wheel.write_bytes(b"w" * WHEEL_ALLOWANCE)
    out = tmp_path / "kit"
    totals = build(REPO / "profiles/h200.yaml", base, folder, out, REPO, [wheel])
    tree = tree_bytes(REPO)
    for part in PARTS:
        carried = sum(p.stat().st_size for p in (out / part).rglob("*") if p.is_file())
        assert totals[part] == carried + tree <= LIMIT_BYTES, (
            f"{part}: {carried / 2**20:.1f} MiB + tree {tree / 2**20:.1f} MiB")
    # call 2 holds everything the 6k and 3k pools need; call 1 the rest of the 10k pool
    assert (out / "call1/images.json").stat().st_size > 0
    print({part: f"{n / 2**20:.1f} MiB of {LIMIT_BYTES / 2**20:.0f}" for part, n in totals.items()})


def test_an_oversized_call_is_refused_and_no_kit_is_left(prep: tuple[Path, Path], tmp_path: Path) -> None:
    folder, base = prep
    with pytest.raises(SystemExit, match=r"call2 would carry .* MiB .* over 40 MiB"):
        build(REPO / "profiles/h200.yaml", base, folder, tmp_path / "kit", REPO, [], limit=40 * 2**20)
    assert not (tmp_path / "kit/call2").exists()


def test_a_profile_with_a_size_of_its_own_methods_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "profiles/h200.yaml").read_text())
    doc["sizes"][3000]["methods"] = ["teacher", "kd"]  # the device run would train every method
    profile = tmp_path / "h200-cut.yaml"
    profile.write_text(yaml.safe_dump(doc))
    base = tmp_path / "params.yaml"
    base.write_text(yaml.safe_dump(committed_params()))
    with pytest.raises(SystemExit, match=r"sizes \[3000\] have their own methods"):
        build(profile, base, tmp_path / "prep", tmp_path / "kit", REPO, [])
    assert not (tmp_path / "kit").exists()

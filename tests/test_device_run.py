"""The GPU path, dry-run on the CPU (docs/device.md): the prep's stages on a few dozen real photos
with the quick profile's recipe shrunk further, the kit, the device driver with a deadline that one
run cannot meet, the finish on the CPU, and the report at the end; then call 2 alone."""

from __future__ import annotations

import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import committed_params

from catdog import device_finish, device_run, device_unpack, stage_runner
from catdog.device_kit import LIMIT_BYTES, PARTS, WEIGHTS_LOW, build
from catdog.device_pack import FILE_LIMIT, RECORD, RUNS_TAR, read_bundles
from catdog.profiles import load_profile, params_for

REPO = Path(__file__).resolve().parents[1]
PER_CLASS = 60  # photos of each class in the raw folder: the splits below need 46 (near-copies dropped)
SIZES = (40, 24, 12)  # the pool sizes, as 10k / 6k / 3k
PREP_STAGES = ("prepare", "teacher", "teacher_logits", "heldout", "teacher_score",
               "representation_bounds")
TINY = {  # over the quick profile: tiny splits, 32 px students, two epochs of everything
    "data.test": 16, "data.labeled": 16, "data.val": 12, "data.size": SIZES[0], "data.max_size": SIZES[0],
    "data.heldout": 8,
    "data.image_size": 48, "teacher.arch": "mobilenet_v2", "teacher.image_size": 64,
    "teacher.batch_size": 16, "compute.device": "cpu", "compute.threads": 1,
    "evaluate.corruption_images": 4, "evaluate.batch_size": 16, "featuremaps.channels": 4,
    "pretrain.epochs": 2, "pretrain.warmup_epochs": 1, "pretrain.batch_size": 16,
    "pretrain.image_size": 32, "pretrain.probe_every": 1, "pretrain_imagenet.epochs": 2,
    "pretrain_imagenet.warmup_epochs": 1, "finetune.epochs": 2, "finetune.patience": 2,
    "finetune.batch_size": 8, "finetune.image_size": 32, "finetune.eval_size": 32,
    "distill.epochs": 2, "distill.patience": 2, "distill.batch_size": 16, "distill.image_size": 32,
    "distill.eval_size": 32,
}
# SimCLR from ImageNet at the largest pool gets an impossible schedule: the guard must skip it.
SIZE_OVERRIDES = {SIZES[0]: {"pretrain_imagenet.epochs": 10_000}, SIZES[1]: {}, SIZES[2]: {}}
METHODS = ["teacher", "scratch", "imagenet", "kd", "simclr", "simclr_imagenet"]
DEADLINE_S = 400  # far more than the tiny runs need, far less than the impossible one


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("device")


@pytest.fixture(scope="module")
def profile_files(root: Path) -> tuple[Path, Path]:
    """(the dry profile, params.yaml as committed)."""
    quick = yaml.safe_load((REPO / "profiles/quick.yaml").read_text())
    profile = root / "profiles/dry.yaml"
    profile.parent.mkdir()
    profile.write_text(yaml.safe_dump({"methods": METHODS, "params": {**quick["params"], **TINY},
                                       "sizes": SIZE_OVERRIDES}))
    base = root / "params.yaml"
    base.write_text(yaml.safe_dump(committed_params(), sort_keys=False))
    return profile, base


@pytest.fixture(scope="module")
def prep(root: Path, profile_files: tuple[Path, Path], shared_zip: Path) -> Path:
    """The CPU prep, as scripts/device/kit.sh runs it, in a folder of its own."""
    folder = root / "prep"
    with zipfile.ZipFile(shared_zip) as zf:
        for cls in ("Cat", "Dog"):
            for n in range(1000, 1000 + PER_CLASS):
                dest = folder / f"data/raw/PetImages/{cls}/{n}.jpg"
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(f"PetImages/{cls}/{n}.jpg"))
    profile, base = profile_files
    params = params_for(load_profile(str(profile), base=base), SIZES[0], yaml.safe_load(base.read_text()))
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in PREP_STAGES:
        stage_runner.run(stage_runner.command(stage), folder)
    return folder


@pytest.fixture(scope="module")
def kit(root: Path, prep: Path, profile_files: tuple[Path, Path]) -> tuple[Path, dict[str, int]]:
    out = root / "kit"
    sizes = build(*profile_files, prep, out, REPO, wheel_files=[])
    return out, sizes


@pytest.fixture(scope="module")
def returned(root: Path, kit: tuple[Path, dict[str, int]]) -> Path:
    """Both calls: stash call 1's part, then call 2's, then the driver (as scripts/device/run.sh)."""
    store, out = root / "stash", root / "out"
    for part in PARTS:  # one part per call
        carried = root / f"carried-{part}"
        shutil.copytree(kit[0] / part, carried / part)
        assert device_unpack.stash(carried, store) == [part]
    device_run.main(["run", str(store), "--out", str(out), "--work", str(root / "box"),
                     "--deadline", str(DEADLINE_S), "--set", "compute.precision=fp32",
                     "--bench-steps", "2", "1"])
    return out


def test_kit_calls_fit_and_call1_holds_the_largest_pool_only(kit: tuple[Path, dict[str, int]]) -> None:
    folder, sizes = kit
    assert set(sizes) == set(PARTS) and all(n <= LIMIT_BYTES for n in sizes.values())
    first = json.loads((folder / "call1/images.json").read_text())
    assert len(first) == SIZES[0] - SIZES[1]  # pool ranks 24-39
    manifest = json.loads((folder / "call2/manifest.json").read_text())
    assert manifest["sizes"] == list(SIZES) and manifest["call1_pool_ranks"] == [SIZES[1], SIZES[0]]
    second = {name for name, _ in json.loads((folder / "call2/images.json").read_text())}
    assert {f for f, _ in manifest["splits"]["pool"][:SIZES[1]]} <= second
    assert not second & {name for name, _ in first}
    assert len(manifest["splits"]["heldout"]) == 8


def test_driver_skips_what_cannot_fit_and_returns_the_rest(returned: Path) -> None:
    files = sorted(p for p in returned.rglob("*") if p.is_file())
    assert len(files) <= 7 and all(p.stat().st_size <= FILE_LIMIT for p in files)  # `log` is the 8th
    record = json.loads((returned / RECORD).read_text())
    status = {(r["method"], r["folder"]): r["status"] for r in record["runs"]}
    assert status.pop(("simclr_imagenet", str(SIZES[0]))) == "skipped"
    assert set(status.values()) == {"done"}, record["runs"]
    assert [m for m, _ in status][:5] == ["scratch", "imagenet", "kd", "kd", "kd"]  # the order
    assert ("scratch", str(SIZES[1])) not in status  # no pool: once, shared by every size
    assert record["kit"]["imagenet_weights"] == "exact" and record["kit"]["sizes"] == list(SIZES)
    assert set(record["bare_step"]) == {"finetune", "distill", "pretrain"}
    kd = next(r for r in record["runs"] if r["method"] == "kd")
    assert kd["stage_rates"][0]["passes"] == 2 * ((SIZES[0] + 16) // 16 * 16)  # 2 epochs, full batches
    assert 0 < kd["stage_rates"][0]["share_of_bare"]
    models = read_bundles(returned)
    assert len(models) == 10 and f"{SIZES[0]}/scratch" in models
    weights = models[f"{SIZES[2]}/kd"]["state_dict"]
    assert weights["features.0.0.weight"].dtype == torch.float32  # float32 again, bfloat16 numbers
    with tarfile.open(returned / RUNS_TAR) as tar:
        names = set(tar.getnames())
    assert f"{SIZES[1]}/dvclive/distill-kd/metrics.json" in names
    assert f"{SIZES[1]}/metrics/time/pretrain.json" in names
    params = yaml.safe_load(tar_member(returned / RUNS_TAR, f"{SIZES[2]}/params.yaml"))
    assert params["data"]["size"] == SIZES[2] and params["compute"]["checkpoint_every"] == 0


def tar_member(path: Path, name: str) -> str:
    with tarfile.open(path) as tar:
        return tar.extractfile(name).read().decode()


def test_finish_scores_draws_and_reports(root: Path, returned: Path, prep: Path) -> None:
    results, work = root / "results", root / "finish"
    device_finish.main([str(returned), "--prep", str(prep), "--work", str(work), "--out", str(results)])
    report = (results / "report.md").read_text()
    assert "KD" in report and "Scratch" in report
    rows = (results / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 + 4 * 3 + 2  # header, the teacher and 4 students at 3 sizes, 2 more
    for size in SIZES:
        snap = results / f"runs/{size}-seed0"
        metrics = {p.stem for p in (snap / "metrics").glob("*.json")}
        want = {"teacher", "scratch", "imagenet", "kd", "simclr"} | (
            {"simclr_imagenet"} if size != SIZES[0] else set())
        assert metrics == want, size
        assert json.loads((snap / "metrics/kd.json").read_text())["n"] == 16
        times = {p.stem for p in (snap / "metrics/time").glob("*.json")}
        assert "distill-kd" in times and not any(t.startswith(("evaluate", "teacher")) for t in times)
        assert (snap / "metrics/representation/bounds.json").is_file()
    assert len(list((work / "dry" / str(SIZES[2]) / "plots/kd/featuremaps").glob("*.png"))) == 10
    device = (results / "device.md").read_text()
    assert "skipped" in device and "Bare training step" in device


def test_call2_alone_runs_the_smaller_pools_with_bfloat16_weights(
        root: Path, kit: tuple[Path, dict[str, int]]) -> None:
    store = root / "alone"
    shutil.copytree(kit[0] / PARTS[1], store / PARTS[1])
    record: dict = {}
    setup = device_unpack.prepare(store, root / "alone-box", {}, record)
    assert list(setup.folders) == [str(s) for s in SIZES[1:]]
    assert record["kit"]["missing_sizes"] == [SIZES[0]]
    assert record["kit"]["imagenet_weights"].startswith("bfloat16")
    folder = setup.folders[str(SIZES[2])]
    assert torch.load(folder / "data/pool/pool.pt", weights_only=True)["images"].shape[0] == SIZES[2]


def test_a_damaged_part_or_one_of_another_kit_is_left_out(
        root: Path, kit: tuple[Path, dict[str, int]]) -> None:
    carried = root / "damaged"
    shutil.copytree(kit[0] / PARTS[0], carried / PARTS[0])
    data = bytearray((carried / PARTS[0] / WEIGHTS_LOW).read_bytes())
    data[-100] ^= 0xFF
    (carried / PARTS[0] / WEIGHTS_LOW).write_bytes(bytes(data))
    assert device_unpack.stash(carried, root / "damaged-stash") == []
    store = root / "mixed"
    shutil.copytree(kit[0] / PARTS[1], store / PARTS[1])
    shutil.copytree(kit[0] / PARTS[0], store / PARTS[0])
    (store / PARTS[0] / "kit-id").write_text("another\n")
    (store / PARTS[0] / "SHA256SUMS").write_text("")  # re-signed: consistent, but another kit's
    record: dict = {}
    device_unpack.prepare(store, root / "mixed-box", {}, record)
    assert record["kit"]["parts"] == [PARTS[1]]


def test_the_deadline_cuts_a_run_going() -> None:
    deadline = device_run.Deadline(0.2)
    with pytest.raises(device_run.DeadlineReached), deadline.armed():
        while True:
            sum(range(1000))


def test_the_driver_runs_dvc_yamls_commands() -> None:
    assert stage_runner.command("distill-kd") == ["catdog.stages.distill", "scratch"]
    assert stage_runner.command("finetune@simclr_imagenet") == ["catdog.stages.finetune",
                                                                "simclr_imagenet"]
    assert stage_runner.command("evaluate-kd") == ["catdog.stages.evaluate", "kd"]
    assert device_run.device_stages("simclr") == ["pretrain", "finetune-simclr"]
    assert not device_run.reads_pool("imagenet") and device_run.reads_pool("kd")

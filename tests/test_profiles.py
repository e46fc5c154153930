"""Run profiles (profiles/*.yaml): validated overrides, dvc exp run arguments, filtered snapshots."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import committed_params

from catdog.params import flatten
from catdog.profiles import load_profile, run_args, snapshot

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def base(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(committed_params()))
    return path


@pytest.mark.parametrize("name", ["quick", "cpu", "h200"])
def test_shipped_profiles_are_valid_at_every_size(name: str, base: Path) -> None:
    profile = load_profile(name, base=base, root=REPO / "profiles")
    known = flatten(committed_params())
    for size in [None, *profile.sizes]:
        assert set(profile.overrides(size)) <= set(known)


def test_cpu_profile_runs_the_reference_methods_at_three_sizes(base: Path) -> None:
    profile = load_profile("cpu", base=base, root=REPO / "profiles")
    assert sorted(profile.sizes) == [3000, 6000, 10000]
    args = run_args(profile, 3000)
    assert args[args.index("data.size=3000") - 1] == "-S"
    assert "distill.epochs=" + str(profile.sizes[3000]["distill.epochs"]) in args
    assert args[-12:] == ["teacher_score", "evaluate@simclr", "featuremaps@simclr",
                          "evaluate@simclr_imagenet", "featuremaps@simclr_imagenet", "evaluate@kd",
                          "featuremaps@kd", "evaluate@scratch", "featuremaps@scratch",
                          "evaluate@imagenet", "featuremaps@imagenet", "representation_bounds"]
    overrides = run_args(profile, 3000, targets=False)  # a val-only sweep names its own stages
    assert overrides == args[:-12] and overrides[::2] == ["-S"] * (len(overrides) // 2)
    # the budget's cut: SimCLR from ImageNet at the 3k pool only, so not among 10k's targets
    assert "evaluate@simclr_imagenet" not in run_args(profile, 10000)
    assert "simclr_imagenet" not in profile.methods_at(6000)
    assert "pretrain_imagenet" not in profile.stages(10000) <= profile.stages(3000)
    assert "methods=" not in " ".join(run_args(profile, 10000))  # a profile key, not a param


def test_h200_profile_is_the_cpu_recipe_but_for_its_held_out_images(base: Path) -> None:
    """The GPU table checks the CPU one: the same methods, sizes and recipe; only data.heldout
    differs (500 held-out JPEGs fit the second device call, 2,000 would not)."""
    cpu, h200 = (load_profile(name, base=base, root=REPO / "profiles") for name in ("cpu", "h200"))
    assert h200.methods == cpu.methods and h200.sizes == cpu.sizes
    assert {k: v for k, v in h200.params.items() if k != "data.heldout"} == cpu.params
    assert h200.params["data.heldout"] == 500


@pytest.mark.parametrize(("doc", "message"), [
    ({"params": {"distill.temprature": 2}}, "unknown parameter 'distill.temprature'"),
    ({"params": {"distill.alpha": 2.0}}, "distill.alpha=2.0 is out of range"),
    ({"sizes": {3000: {"data.max_size": 2000}}}, r"\(size 3000\): data.size=3000 exceeds data.max_size"),
    ({"methods": ["kd", "mae"]}, r"unknown method\(s\) \['mae'\]"),
    ({"sizes": {3000: {"methods": ["kd", "mea"]}}}, r"unknown method\(s\) \['mea'\]"),
    ({"param": {}}, r"unknown section\(s\) \['param'\]"),
])
def test_bad_profiles_are_refused_before_anything_runs(doc: dict, message: str, base: Path,
                                                       tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SystemExit, match=message):
        load_profile("bad", base=base, root=tmp_path)


def test_missing_profile_names_the_known_ones(base: Path) -> None:
    with pytest.raises(SystemExit, match=r"no profile 'gpu' .*known: cpu, h200, quick"):
        load_profile("gpu", base=base, root=REPO / "profiles")


def test_snapshot_keeps_only_the_profile_methods_and_stages(base: Path, tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/two.yaml").write_text(yaml.safe_dump({"methods": ["teacher", "kd"]}))
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    for name in ("teacher", "kd", "simclr_kd"):  # simclr_kd: stale, from another run
        (tmp_path / "metrics/time").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"metrics/{name}.json").write_text(json.dumps({"accuracy": 0.5}))
    for stage in ("fetch", "teacher", "teacher_score", "teacher_logits", "distill-kd",
                  "evaluate-kd", "distill-simclr_kd", "pretrain"):
        (tmp_path / f"metrics/time/{stage}.json").write_text(json.dumps({"seconds": 1.0}))
    profile = load_profile("two", base=base, root=tmp_path / "profiles")
    snapshot(profile, tmp_path / "out/run", root=tmp_path)
    out = tmp_path / "out/run"
    assert sorted(p.name for p in (out / "metrics").glob("*.json")) == ["kd.json", "teacher.json"]
    assert sorted(p.stem for p in (out / "metrics/time").glob("*.json")) == [
        "distill-kd", "evaluate-kd", "fetch", "teacher", "teacher_logits", "teacher_score"]
    assert (out / "params.yaml").is_file() and not (tmp_path / "out/run.tmp").exists()


def test_snapshot_keeps_the_methods_of_its_own_pool_size(base: Path, tmp_path: Path) -> None:
    """A size with its own `methods` (the cpu profile's SimCLR from ImageNet at 3k only): the
    snapshot of a run at that size takes its metrics, not the profile's other methods' stale ones."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/cut.yaml").write_text(yaml.safe_dump(
        {"methods": ["teacher", "kd", "simclr_imagenet"], "sizes": {3000: {}, 6000: {
            "methods": ["teacher", "kd"]}}}))
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    (tmp_path / "metrics/time").mkdir(parents=True)
    for name in ("teacher", "kd", "simclr_imagenet"):  # simclr_imagenet: left by a 3k run
        (tmp_path / f"metrics/{name}.json").write_text(json.dumps({"accuracy": 0.5}))
    for stage in ("distill-kd", "pretrain_imagenet"):
        (tmp_path / f"metrics/time/{stage}.json").write_text(json.dumps({"seconds": 1.0}))
    profile = load_profile("cut", base=base, root=tmp_path / "profiles")
    for size, methods in ((6000, ["kd", "teacher"]), (3000, ["kd", "simclr_imagenet", "teacher"])):
        params = committed_params()
        params["data"]["size"] = size
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        snapshot(profile, tmp_path / f"out/{size}", root=tmp_path)
        assert sorted(p.stem for p in (tmp_path / f"out/{size}/metrics").glob("*.json")) == methods
        times = sorted(p.stem for p in (tmp_path / f"out/{size}/metrics/time").glob("*.json"))
        assert times == (["distill-kd"] if size == 6000 else ["distill-kd", "pretrain_imagenet"])


def test_snapshot_of_an_experiment_reads_git_and_the_dvc_cache(base: Path, tmp_path: Path) -> None:
    """A queued experiment's snapshot: metrics/<method>.json from its git commit, the cached
    representation score from the DVC cache by the md5 its dvc.lock names, nothing else."""
    root = tmp_path / "repo"
    (root / "profiles").mkdir(parents=True)
    (root / "profiles/cpu.yaml").write_text(yaml.safe_dump({"methods": ["simclr", "kd"]}))
    score = json.dumps({"probe_agree": 0.61})
    md5 = "0123456789abcdef0123456789abcdef"
    cached = root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True)
    cached.write_text(score)
    side = committed_params()["data"]["image_size"]
    lock = {"schema": "2.0", "stages": {
        "pretrain": {"cmd": "x", "params": {"params.yaml": {"data.image_size": side}}, "outs": [
            {"path": "metrics/representation/simclr.json", "hash": "md5", "md5": md5}]},
        # the baseline's entry of a stage this run did not run, made with other params
        "distill@kd": {"cmd": "y", "params": {"params.yaml": {"data.image_size": side // 2}}}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    (root / "params.yaml").write_text(base.read_text())
    (root / "metrics").mkdir()
    for method in ("simclr", "kd"):
        (root / f"metrics/{method}.json").write_text(json.dumps({"accuracy": 0.5}))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["init", "-q"], ["add", "params.yaml", "dvc.lock", "metrics"], ["commit", "-qm", "x"],
                ["update-ref", "refs/exps/ab/cdef/my-exp", "HEAD"]):
        subprocess.run(git + cmd, cwd=root, check=True)
    for path in ("metrics/simclr.json", "metrics/kd.json", "dvc.lock"):
        (root / path).unlink()  # the workspace moved on; the experiment still holds them
    profile = load_profile("cpu", base=base, root=root / "profiles")
    snapshot(replace(profile, methods=["simclr"]), tmp_path / "run", root=root, rev="my-exp")
    out = tmp_path / "run"
    assert sorted(p.name for p in (out / "metrics").glob("*.json")) == ["simclr.json"]
    assert (out / "metrics/representation/simclr.json").read_text() == score
    assert yaml.safe_load((out / "dvc.lock").read_text()) == {
        "schema": "2.0", "stages": {"pretrain": lock["stages"]["pretrain"]}}
    with pytest.raises(SystemExit, match="no commit or DVC experiment named no-such-exp"):
        snapshot(profile, tmp_path / "other", root=root, rev="no-such-exp")
    assert not (tmp_path / "other").exists()


def test_a_rerun_adds_its_scores_only_when_it_trained_the_same_model(tmp_path: Path) -> None:
    from catdog.profiles import add_scores

    def run(name: str, metrics: dict, scores: dict | None = None) -> Path:
        folder = tmp_path / name
        (folder / "metrics").mkdir(parents=True)
        (folder / "metrics/simclr.json").write_text(json.dumps(metrics))
        if scores is not None:
            (folder / "metrics/representation").mkdir()
            (folder / "metrics/representation/simclr.json").write_text(json.dumps(scores))
        return folder

    dest = run("10000-seed0", {"accuracy": 0.578, "val_accuracy": 0.68, "train_seconds": 34.6,
                               "C": 10.0})  # a key the rerun no longer writes
    other = run("other", {"accuracy": 0.581, "val_accuracy": 0.68, "ece": 0.03})
    with pytest.raises(SystemExit, match=r"did not repeat .*accuracy 0.578 -> 0.581"):
        add_scores(other, dest, "simclr")
    assert "ece" not in json.loads((dest / "metrics/simclr.json").read_text())
    assert not (dest / "metrics/representation").exists()
    same = run("same", {"accuracy": 0.578, "val_accuracy": 0.68, "train_seconds": 41.2,
                        "ece": 0.03}, scores={"probe_agree": 0.58})
    assert add_scores(same, dest, "simclr") == ["ece"]
    assert json.loads((dest / "metrics/simclr.json").read_text()) == {
        "accuracy": 0.578, "val_accuracy": 0.68, "train_seconds": 34.6, "C": 10.0, "ece": 0.03}
    assert json.loads((dest / "metrics/representation/simclr.json").read_text()) == {
        "probe_agree": 0.58}


def test_cli_prints_one_argument_per_line() -> None:
    done = subprocess.run([sys.executable, "-m", "catdog.profiles", "args", "quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "-S" and "data.size=2000" in lines and "data.max_size=2000" in lines


def test_check_names_a_snapshot_made_with_another_recipe(base: Path, tmp_path: Path) -> None:
    from catdog.profiles import recipe_changes, set_args

    profile = load_profile("cpu", base=base)
    params = yaml.safe_load(base.read_text())
    for key, value in profile.overrides(10000).items():
        group, name = key.split(".")
        params[group][name] = value
    params["train"]["seed"] = 1  # set by the sweep: never a change
    params["data"]["source"] = "/elsewhere/photos.zip"
    del params["distill"]["label_smoothing"]  # a param added after the snapshot was made
    snap = tmp_path / "10000-seed1"
    snap.mkdir()
    (snap / "params.yaml").write_text(yaml.safe_dump(params))
    text = base.read_text()
    assert recipe_changes(profile, 10000, snap, text) == []
    ten, six = profile.overrides(10000), profile.overrides(6000)  # the 6k row has other epochs
    epochs = list(profile.sizes[10000])
    assert epochs and all(ten[k] != six[k] for k in epochs)
    assert set(recipe_changes(profile, 6000, snap, text)) == {
        f"{k}={ten[k]} (this run: {six[k]})" for k in epochs}
    this_run = profile.overrides(10000)["distill.temperature"]
    params["distill"]["temperature"] = other = this_run * 2  # the snapshot ran another T
    (snap / "params.yaml").write_text(yaml.safe_dump(params))
    assert recipe_changes(profile, 10000, snap, text) == [
        f"distill.temperature={other} (this run: {this_run})"]
    extra = set_args(["-S", f"distill.temperature={other}", "-S", "data.source=/x.zip", "evaluate@kd"])
    assert extra == {"distill.temperature": other, "data.source": "/x.zip"}
    assert recipe_changes(profile, 10000, snap, text, extra) == []

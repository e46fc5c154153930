"""End to end, in a temporary copy of the repository: the README's quick run through real DVC (at
the SMOKE sizes below), then a pool-size experiment that reruns only what depends on the pool,
and `dvc metrics diff`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import slice_zip

from catdog.profiles import load_profile

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
# The quick profile's every stage and method, with fewer images and epochs: the README's
# `bash scripts/quick-run.sh` with arguments (they override the profile), so that the suite
# keeps to minutes. What it checks is that every stage runs and writes what dvc.yaml declares;
# learning is checked where a few epochs suffice (the teacher and the ImageNet-started students).
SMOKE = {
    "data.test": 200,                    # test images (one standard error of a ROC AUC ~0.03)
    "evaluate.corruption_images": 20,    # test images under each corruption and severity
    "data.size": 300,                    # pool images
    "data.max_size": 300,                # the largest pool: the teacher's logits cover it
    "data.heldout": 100,                 # held-out images the teacher labels
    "pretrain.epochs": 2,                # SimCLR on the pool (one of them warm-up)
    "finetune.epochs": 4,                # supervised epochs on the 420 labels
    "finetune.patience": 4,
    "distill.epochs": 3,                 # KD epochs over pool + labels
    "distill.patience": 3,
}
SMOKE_ARGS = [arg for key, value in SMOKE.items() for arg in ("-S", f"{key}={value}")]
LEARNS = ("imagenet", "imagenet_kd", "simclr_imagenet")  # students that start from ImageNet


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 1800) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _json(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """A DVC command's --json output (stdout only: DVC warns on stderr)."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


# Photos 0-849 of each class (1,700 with the broken Cat/835.jpg): enough for every smoke split
# (200 test, 420 labeled, 180 val, 300 pool, 100 held-out). All 23,000 would cost the e2e about
# 40 s of DVC hashing them in `fetch` and decoding them in `prepare` (docs/running.md).
E2E_PHOTOS_PER_CLASS = 850


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory, shared_zip: Path) -> Path:
    """The project's files (tracked and new, not ignored) in a fresh git repo beside a ../shared
    that holds the ImageNet weights and a subset of the photos."""
    root = tmp_path_factory.mktemp("e2e")
    slice_zip(shared_zip, root / "shared" / "data" / shared_zip.name, E2E_PHOTOS_PER_CLASS)
    (root / "shared" / "torch").symlink_to(shared_zip.parents[1] / "torch")
    copy = root / "catdog"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_file() and not name.startswith(("metrics/", "plots/", "dvclive/")):
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / name)
    (copy / "dvc.lock").unlink(missing_ok=True)  # start from nothing: every stage must run
    (copy / ".venv").symlink_to(REPO / ".venv")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=copy, check=True)
    return copy


@pytest.fixture(scope="module")
def env(repo_copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{repo_copy / '.venv/bin'}:{env['PATH']}"
    env.setdefault("GIT_AUTHOR_NAME", "t")
    env.setdefault("GIT_AUTHOR_EMAIL", "t@t")
    env.setdefault("GIT_COMMITTER_NAME", "t")
    env.setdefault("GIT_COMMITTER_EMAIL", "t@t")
    return env


@pytest.fixture(scope="module")
def quick_run(repo_copy: Path, env: dict[str, str]) -> str:
    return _run(["bash", "scripts/quick-run.sh", *SMOKE_ARGS], repo_copy, env)


def test_quick_run_produces_every_metric_and_plot(repo_copy: Path, quick_run: str) -> None:
    profile = load_profile("quick", base=repo_copy / "params.yaml", root=repo_copy / "profiles")
    assert profile.methods == ["teacher", "simclr", "simclr_imagenet", "kd", "scratch", "imagenet",
                               "imagenet_kd", "simclr_kd"]
    for method in profile.methods:
        metrics = json.loads((repo_copy / f"metrics/{method}.json").read_text())
        assert 0.0 <= metrics["accuracy"] <= 1.0
        assert metrics["n"] == SMOKE["data.test"]
        assert (repo_copy / f"plots/{method}/confusion.csv").is_file()
    assert json.loads((repo_copy / "metrics/teacher.json").read_text())["accuracy"] > 0.85
    for method in profile.methods[1:]:
        info = json.loads((repo_copy / f"metrics/{method}.json").read_text())
        assert 1 <= info["epochs"] <= info["epochs_run"]
        assert 0.0 <= info["val_accuracy"] <= 1.0 and info["eval_size"] == 80
        assert 0.0 <= info["roc_auc"] <= 1.0 and 0.0 <= info["recall_dog"] <= 1.0, method
        if method in LEARNS:  # no constant predictor: both classes, an informative ranking
            assert info["recall_cat"] > 0.3 and info["recall_dog"] > 0.3, method
            assert info["roc_auc"] > 0.7, method
        assert len(list((repo_copy / f"plots/{method}/featuremaps").glob("*.png"))) == 10
        assert 0.0 <= info["ece"] <= 0.5 and 0.0 <= info["corruption_accuracy"] <= 1.0, method
        assert (repo_copy / f"plots/{method}/reliability.csv").is_file()
    assert (repo_copy / "dvclive/pretrain/plots/metrics/val/knn_acc.tsv").is_file()
    # Each pretraining's representation score, with the floor and ceiling beside it.
    scores = {p.stem: json.loads(p.read_text())
              for p in (repo_copy / "metrics/representation").glob("*.json")}
    assert set(scores) == {"simclr", "simclr_imagenet", "bounds"}
    assert scores["bounds"]["imagenet"]["probe_agree"] > scores["bounds"]["random"]["probe_agree"]
    assert (repo_copy / "dvclive/pretrain_imagenet/plots/metrics/heldout/probe_agree.tsv").is_file()
    # Every stage the profile ran records its wall time: metrics/time/<stage>.json.
    listed = _run(["dvc", "stage", "list", "--name-only"], repo_copy, os.environ | {
        "PATH": f"{repo_copy}/.venv/bin:" + os.environ["PATH"]})
    stages = {line.split()[0].replace("@", "-") for line in listed.splitlines()}
    assert len(stages) == 32 and {"teacher_score", "teacher_logits", "distill-imagenet_kd"} <= stages
    times = {p.stem: json.loads(p.read_text())["seconds"]
             for p in (repo_copy / "metrics/time").glob("*.json")}
    assert set(times) == profile.stages() and profile.stages() <= stages
    assert all(0 < s < 1800 for s in times.values())
    assert "precision: " in quick_run  # each training stage says which precision it picked
    status = _run(["dvc", "status", *profile.targets()], repo_copy, os.environ | {
        "PATH": f"{repo_copy}/.venv/bin:" + os.environ["PATH"]})
    assert "Data and pipelines are up to date" in status


def test_dvc_metrics_and_plots_show_warn_about_nothing_after_the_quick_run(
        repo_copy: Path, env: dict[str, str], quick_run: str) -> None:
    for cmd in (["dvc", "metrics", "show"], ["dvc", "plots", "show", "--json"]):
        done = subprocess.run(cmd, cwd=repo_copy, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "failed to load" not in done.stdout + done.stderr, " ".join(cmd)
        assert "WARNING" not in done.stderr, f"{' '.join(cmd)}: {done.stderr[-2000:]}"
    # One row per model: the comparison, and nothing a stage records for itself.
    table = _run(["dvc", "metrics", "show"], repo_copy, env)
    rows = [line.split()[0] for line in table.splitlines()[1:] if line.strip()]
    assert sorted(rows) == sorted(f"metrics/{m}.json" for m in (
        "teacher", "simclr", "simclr_imagenet", "kd", "scratch", "imagenet", "imagenet_kd", "simclr_kd"))


def test_pool_experiment_reruns_only_what_depends_on_the_pool(
        repo_copy: Path, env: dict[str, str], quick_run: str) -> None:
    _run(["git", "add", "-A"], repo_copy, env)
    _run(["git", "commit", "-qm", "quick run"], repo_copy, env)
    targets = ["evaluate@simclr", "evaluate@kd"]  # skip the pictures: faster
    out = _run(["dvc", "exp", "run", "-S", "data.size=150", *targets], repo_copy, env)
    # The teacher's logits of the 300-image pool serve the 150-image one: no teacher rerun.
    for stage in ("fetch", "prepare", "teacher", "teacher_logits", "heldout"):
        assert f"Stage '{stage}' didn't change, skipping" in out
    for stage in ("pool", "pretrain", "finetune@simclr", "distill@kd", "evaluate@kd"):
        assert f"Running stage '{stage}'" in out
    diff = _json(["dvc", "metrics", "diff", "--json"], repo_copy, env)
    assert {"metrics/simclr.json", "metrics/kd.json"} <= set(diff)
    assert "metrics/scratch.json" not in diff  # baselines on the 420 labels ignore the pool
    assert "metrics/teacher.json" not in diff  # the teacher never saw the pool
    assert all(path.startswith("metrics/") and path.count("/") == 1 for path in diff)
    plots = _json(["dvc", "plots", "show", "--json"], repo_copy, env)["data"]
    assert {"Confusion matrices (test)", "Val accuracy (fine-tune and distill)",
            "SimCLR kNN accuracy on val"} <= set(plots)
    assert "plots/kd/featuremaps/dog_features.18.2.png" in plots

"""scripts/sweep.sh: one DVC experiment per (size, seed), snapshots, resume, then the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A fake pipeline whose metrics and stage times follow from data.size and train.seed.
FAKE_TRAIN = """\
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))
size, seed = p["data"]["size"], p["train"]["seed"]
os.makedirs("metrics/time", exist_ok=True)
json.dump({"accuracy": 0.6 + size / 100000 + seed / 100, "epochs": seed + 1}, open("metrics/kd.json", "w"))
json.dump({"seconds": size / 100}, open("metrics/time/distill-kd.json", "w"))
json.dump({"seconds": 7}, open("metrics/time/teacher.json", "w"))
with open("runs.log", "a") as log:
    log.write(f"{size} {seed}\\n")
"""
DVC_YAML = """\
stages:
  train:
    cmd: python fake_train.py
    deps: [fake_train.py]
    params: [data.size, train.seed]
    metrics:
      - metrics/kd.json: {cache: false}
      - metrics/time: {cache: false}
"""


def sweep(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "scripts/sweep.sh"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def fake_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "study"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts/sweep.sh", root / "scripts/sweep.sh")
    (root / "fake_train.py").write_text(FAKE_TRAIN)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("data:\n  size: 10000\ntrain:\n  seed: 0\n")
    (root / ".gitignore").write_text("runs.log\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(REPO / "src"), "SIZES": "600 300", "SEEDS": "0 1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    # A DVC project copied without its .git folder, as on a GPU box that gets the working tree.
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    shutil.rmtree(root / ".git")
    return root, env


def test_sweep_runs_each_size_and_seed_once_and_resumes(fake_repo: tuple[Path, dict[str, str]]) -> None:
    root, env = fake_repo
    done = sweep(root, env)
    assert done.returncode == 0, done.stderr
    assert "making a throwaway one" in done.stderr
    assert (root / "runs.log").read_text().split("\n")[:-1] == ["600 0", "300 0", "600 1", "300 1"]
    snapshots = sorted(p.name for p in (root / "results/runs").iterdir())
    assert snapshots == ["300-seed0", "300-seed1", "600-seed0", "600-seed1"]
    kd = json.loads((root / "results/runs/300-seed1/metrics/kd.json").read_text())
    assert kd["accuracy"] == pytest.approx(0.6 + 300 / 100000 + 0.01)

    runs = json.loads((root / "results/runs.json").read_text())
    assert [(r["name"], r["size"]) for r in runs] == [
        ("600-seed0", 600), ("600-seed1", 600), ("300-seed0", 300), ("300-seed1", 300)]
    assert runs[0]["seconds"] == {"distill-kd": 6.0, "teacher": 7.0}
    md = (root / "results/report.md").read_text()
    assert "| 600 | 2 | 0.611 ± 0.007 |" in md  # mean ± std of seeds 0 and 1
    assert "| 300 | 10 ± 0 |" in md  # KD's wall time: teacher 7 + distill 3

    # An interrupted sweep: a lost snapshot is rerun, finished ones are skipped.
    shutil.rmtree(root / "results/runs/600-seed1")
    again = sweep(root, env)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("done, skipping") == 3
    assert "data.size=600 train.seed=1" in again.stderr
    kd = json.loads((root / "results/runs/600-seed1/metrics/kd.json").read_text())
    assert kd["accuracy"] == pytest.approx(0.6 + 600 / 100000 + 0.01)
    assert len((root / "runs.log").read_text().split()) == 8  # DVC's run cache restored it

"""What a stage records for itself (models/*.json, metrics/time/*.json) is a plain cached output,
not a DVC metric, so that `dvc metrics show` is the comparison alone; catdog.experiments reads
those files back into `dvc exp show` for the tuning readers, from each experiment's dvc.lock and
the DVC cache. Checked on a toy DVC project through `dvc exp run`, and on the project's dvc.yaml."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dvc_yaml import entries, stage_bodies

from catdog.experiments import add_records, baselines, exp_entries, exp_show, main

STAGE = """\
import json, time, yaml
from pathlib import Path
lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
Path("models").mkdir(exist_ok=True); Path("metrics/time").mkdir(parents=True, exist_ok=True)
json.dump({"val_accuracy": lr * 2, "epochs": 3}, open("models/m.json", "w"))
json.dump({"seconds": 1.5}, open("metrics/time/train.json", "w"))
json.dump({"accuracy": lr * 3}, open("metrics/m.json", "w"))
"""
SCORE = """\
import json, yaml
k = yaml.safe_load(open("params.yaml"))["score"]["k"]
json.dump({"val_accuracy": k / 10}, open("models/s.json", "w"))
json.dump({"accuracy": k / 5}, open("metrics/s.json", "w"))
"""
DVC_YAML = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train.lr]
    outs:
      - models/m.json
      - metrics/time/train.json
    metrics:
      - metrics/m.json:
          cache: false
  score:
    cmd: python score.py
    deps: [score.py]
    params: [score.k]
    outs: [models/s.json]
    metrics:
      - metrics/s.json:
          cache: false
"""


def _run(cmd: list[str], cwd: Path) -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path})
    assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed toy project, run once, with two experiments on top: lr25 (train.lr 0.25, every
    stage) and partial (train.lr 0.5 and score.k 2, the score stage alone)."""
    root = tmp_path_factory.mktemp("records")
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], root)
    _run(["git", "config", "user.email", "t@example.com"], root)
    _run(["git", "config", "user.name", "t"], root)
    _run([*dvc, "init", "-q"], root)
    (root / "train.py").write_text(STAGE)
    (root / "score.py").write_text(SCORE)
    (root / "params.yaml").write_text("train:\n  lr: 0.1\nscore:\n  k: 1\n")
    (root / "dvc.yaml").write_text(DVC_YAML)
    _run([*dvc, "repro", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "base"], root)
    _run([*dvc, "exp", "run", "-S", "train.lr=0.25", "--name", "lr25"], root)
    _run([*dvc, "exp", "run", "-S", "train.lr=0.5", "-S", "score.k=2", "--name", "partial", "score"], root)
    return root


def test_the_metrics_table_holds_only_the_comparison(project: Path) -> None:
    table = _run([sys.executable, "-m", "dvc", "metrics", "show"], project)
    assert "metrics/m.json" in table and "models/m.json" not in table and "time" not in table


def test_exp_show_reads_back_each_experiments_own_records(project: Path) -> None:
    show = exp_show(root=project)
    by_name = {(entry.get("name") or entry["rev"]): entry["data"]["metrics"]
               for entry, _ in exp_entries(show)}
    assert by_name["lr25"]["models/m.json"]["data"] == {"val_accuracy": 0.5, "epochs": 3}
    assert by_name["lr25"]["metrics/m.json"]["data"] == {"accuracy": 0.75}  # DVC's own, kept
    assert by_name["workspace"]["models/m.json"]["data"]["val_accuracy"] == pytest.approx(0.5)
    base = next(m for name, m in by_name.items() if name not in ("lr25", "workspace"))
    assert base["models/m.json"]["data"]["val_accuracy"] == pytest.approx(0.2)
    assert base["metrics/time/train.json"]["data"] == {"seconds": 1.5}


def test_an_experiment_reports_only_what_its_params_made(project: Path) -> None:
    by_name = {(entry.get("name") or entry["rev"]): entry["data"]["metrics"]
               for entry, _ in exp_entries(exp_show(root=project))}
    partial = by_name["partial"]
    assert partial["metrics/s.json"]["data"] == {"accuracy": 0.4}
    assert partial["models/s.json"]["data"] == {"val_accuracy": 0.2}
    # train ran at lr 0.1 in the baseline, not at the experiment's 0.5: none of its outputs count
    assert not {"metrics/m.json", "models/m.json", "metrics/time/train.json"} & set(partial)
    assert by_name["lr25"]["metrics/m.json"]["data"] == {"accuracy": 0.75}  # made by lr25 itself


def test_a_record_gone_from_the_cache_is_left_out(project: Path, tmp_path: Path) -> None:
    show = json.loads(_run([sys.executable, "-m", "dvc", "exp", "show", "--json"], project))
    bare = tmp_path / "bare"  # the same repository, without its DVC cache
    _run(["git", "clone", "-q", str(project), str(bare)], tmp_path)
    base = [entry for entry, _ in exp_entries(show) if entry["rev"] not in ("workspace",)][0]
    add_records([base | {"experiments": None}], bare)
    assert "models/m.json" not in base["data"]["metrics"] and "metrics/m.json" in base["data"]["metrics"]


def test_the_saved_record_names_every_baseline_with_experiments(
        project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    head = _run(["git", "rev-parse", "HEAD"], project).strip()
    (project / "notes.txt").write_text("the branch moves on after the experiment\n")
    _run(["git", "add", "notes.txt"], project)
    _run(["git", "commit", "-qm", "later"], project)
    assert baselines(project) == [head, _run(["git", "rev-parse", "HEAD"], project).strip()]
    monkeypatch.chdir(project)
    main([])
    record = json.loads(capsys.readouterr().out)
    names = [entry.get("name") for entry, _ in exp_entries(record)]
    assert "lr25" in names  # found under its own baseline, no longer HEAD
    # kept in results/ gzipped, and read back as it was
    saved = project / "exp_show.json.gz"
    saved.write_bytes(gzip.compress(json.dumps(record).encode()))
    assert exp_show(saved) == record


def test_the_projects_metrics_are_the_methods_and_the_teacher_alone() -> None:
    declared = [path for body in stage_bodies().values() for path, _ in entries(body, "metrics")]
    assert sorted(declared) == ["metrics/${item}.json", "metrics/teacher.json"]
    for body in stage_bodies().values():  # every stage records its wall time, as a cached output
        times = [(p, o) for p, o in entries(body, "outs") if p.startswith("metrics/time/")]
        assert len(times) == 1 and times[0][1].get("cache", True) is True, body.get("cmd")

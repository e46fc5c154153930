"""A training stage killed mid-run (kill -9) resumes from its last checkpoint and ends exactly
where an uninterrupted run ends; the same params and seed give the same model twice on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_split

from catdog.cache import save_split, split_path

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 8


@pytest.fixture(scope="module")
def splits(shared_zip: Path) -> dict:
    return {"labeled": make_split(shared_zip, 48, size=40, offset=100),
            "val": make_split(shared_zip, 10, size=40, offset=200)}


def _workspace(root: Path, splits: dict) -> Path:
    root.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["compute"].update({"device": "cpu", "threads": 1})
    params["finetune"].update({"epochs": EPOCHS, "patience": EPOCHS, "batch_size": 16,
                               "image_size": 32})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for name, split in splits.items():
        save_split(root / split_path(name), split)
    return root


def _finetune(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "catdog.stages.finetune", "scratch"], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _steps_logged(cwd: Path) -> int:
    try:
        return json.loads((cwd / "dvclive/finetune-scratch/metrics.json").read_text())["step"] + 1
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def _wait_for_steps(cwd: Path, proc: subprocess.Popen, steps: int) -> None:
    """Wait until `steps` epochs are logged, then check the run is still going."""
    deadline = time.time() + 600
    while _steps_logged(cwd) < steps and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be stopped"


def _outcome(cwd: Path) -> tuple[dict, list[str]]:
    model = torch.load(cwd / "models/scratch.pt", weights_only=True)["state_dict"]
    curve = (cwd / "dvclive/finetune-scratch/plots/metrics/val/acc.tsv").read_text().splitlines()
    return model, curve


def test_killed_run_resumes_to_the_same_result(tmp_path: Path, splits: dict) -> None:
    straight = _workspace(tmp_path / "straight", splits)
    proc = _finetune(straight)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()

    killed = _workspace(tmp_path / "killed", splits)
    proc = _finetune(killed)
    _wait_for_steps(killed, proc, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "models/scratch.pt").exists()
    resumed = _finetune(killed)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    log = resumed.stderr.read()
    assert "resuming from checkpoints/finetune-scratch.pt after epoch" in log
    done_before = int(log.split("after epoch ")[1].split()[0])
    assert done_before >= 3

    model_a, curve_a = _outcome(straight)
    model_b, curve_b = _outcome(killed)
    assert curve_a == curve_b and len(curve_a) == EPOCHS + 1  # header + one row per epoch
    for key, value in model_a.items():
        assert torch.equal(value, model_b[key]), key
    info_a = json.loads((straight / "models/scratch.json").read_text())
    info_b = json.loads((killed / "models/scratch.json").read_text())
    assert info_a["epochs"] == info_b["epochs"] and info_a["epochs_run"] == info_b["epochs_run"]


def test_checkpoint_of_other_params_is_not_resumed(tmp_path: Path, splits: dict) -> None:
    cwd = _workspace(tmp_path / "ws", splits)
    assert _finetune(cwd).wait(timeout=600) == 0
    params = yaml.safe_load((cwd / "params.yaml").read_text())
    params["finetune"]["lr"] = 0.0005
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _finetune(cwd)
    assert proc.wait(timeout=600) == 0
    log = proc.stderr.read()
    assert "ignoring checkpoints/finetune-scratch.pt: it belongs to other params or inputs" in log
    assert "resuming" not in log


def test_ctrl_c_says_how_to_resume(tmp_path: Path, splits: dict) -> None:
    cwd = _workspace(tmp_path / "ws", splits)
    proc = _finetune(cwd)
    _wait_for_steps(cwd, proc, 1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 1
    last = proc.stderr.read().strip().splitlines()[-1]
    assert last.startswith("interrupted after epoch ")
    assert last.endswith("saved in checkpoints/finetune-scratch.pt: run the stage again to resume")
    assert not (cwd / "models/scratch.pt").exists()

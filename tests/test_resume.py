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
from conftest import committed_params, make_split

from catdog.cache import save_split, split_path

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 8


@pytest.fixture(scope="module")
def splits(shared_zip: Path) -> dict:
    return {"labeled": make_split(shared_zip, 48, size=40, offset=100),
            "val": make_split(shared_zip, 10, size=40, offset=200)}


def _workspace(root: Path, splits: dict) -> Path:
    root.mkdir()
    params = committed_params()
    params["compute"].update({"device": "cpu", "threads": 1, "precision": "fp32"})
    params["finetune"].update({"epochs": EPOCHS, "patience": EPOCHS, "batch_size": 16,
                               "image_size": 32})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for name, split in splits.items():
        save_split(root / split_path(name), split)
    return root


def _finetune(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "catdog.stages.finetune", "scratch"], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_default)


def _ctrl_c_default() -> None:
    """Ctrl-C as a terminal delivers it, even when pytest runs as a background job (`&`), which
    starts with SIGINT ignored and would pass that on to the stage."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
    assert "ignoring checkpoints/finetune-scratch.pt: it belongs to other params, inputs or code" in log
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


def test_fingerprint_follows_the_code(tmp_path: Path) -> None:
    """A checkpoint written by other code (e.g. before a fix) has another run id."""
    from catdog.train_loop import fingerprint

    code = tmp_path / "pkg"
    code.mkdir()
    (code / "a.py").write_text("X = 1\n")
    before = fingerprint({"lr": 0.1}, [], code=[code / "a.py"], code_root=code)
    assert fingerprint({"lr": 0.1}, [], code=[code / "a.py"], code_root=code) == before
    (code / "a.py").write_text("X = 2\n")
    assert fingerprint({"lr": 0.1}, [], code=[code / "a.py"], code_root=code) != before


def test_fingerprint_covers_the_code_the_stage_runs_only() -> None:
    """A fine-tune's checkpoint follows supervised.py and its own module, not the report's code."""
    script = ("import catdog.stages.finetune; from catdog.train_loop import loaded_code, PACKAGE_DIR; "
              "print(' '.join(p.relative_to(PACKAGE_DIR).as_posix() for p in loaded_code()))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    files = set(done.stdout.split())
    assert {"stages/finetune.py", "supervised.py", "train_loop.py", "augment.py"} <= files
    assert not {"report.py", "simclr.py", "distillation.py", "tuning.py"} & files


def test_stage_clock_adds_the_seconds_of_interrupted_runs(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from catdog.stage_time import StageClock

    monkeypatch.chdir(tmp_path)
    seconds = StageClock("distill-kd").save(carried=100.0)
    assert 100.0 <= seconds < 101.0
    assert json.loads((tmp_path / "metrics/time/distill-kd.json").read_text()) == {"seconds": seconds}


@pytest.mark.parametrize(("every", "saved"), [(1, [1, 2, 3, 4, 5]), (2, [2, 4, 5]), (0, [])])
def test_checkpoints_are_written_every_n_epochs_and_after_the_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int, saved: list[int]) -> None:
    from catdog import train_loop

    written = []
    real_save = train_loop.save_torch
    monkeypatch.setattr(train_loop, "save_torch",
                        lambda path, blob: written.append(blob["state"].epoch) or real_save(path, blob))
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    checkpoint = tmp_path / "ck.pt"
    train_loop.train(model, opt, sched, torch.Generator(), lambda e: {"train/loss": 0.0},
                     lambda e: {"val/acc": float(e)}, epochs=5, monitor="val/acc", checkpoint=checkpoint,
                     live_dir=tmp_path / "live", run_id="x", checkpoint_every=every)
    assert written == saved
    assert checkpoint.is_file() == bool(saved)

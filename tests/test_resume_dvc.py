"""Resume survives DVC itself: a stage killed (kill -9) during `dvc exp run`, `dvc repro` or a
queued experiment (`dvc queue start`) in a fresh clone, whose dvc.lock came from another machine
(its checkpoint object in no local cache), resumes from its last epoch when the same command is
given again (for the queue: the same experiment queued again, through catdog.resume_store), and
ends where an uninterrupted run ends. The toy stage trains with catdog.train_loop.train and
declares its checkpoint as every training stage of dvc.yaml does (checked here too)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from dvc_yaml import entries, stage_bodies

pytestmark = pytest.mark.slow

# A training stage in miniature: 6 epochs of a linear model; with KILL_AT in the environment it
# kills itself (SIGKILL, no cleanup) as epoch KILL_AT starts, after epoch KILL_AT - 1's checkpoint.
TOY_STAGE = """\
import json, os, signal, sys
from pathlib import Path
import torch, yaml
from catdog.train_loop import fingerprint, seed_everything, train
epochs = yaml.safe_load(open("params.yaml"))["train"]["epochs"]
gen = seed_everything(0, torch.device("cpu"))
x, y = torch.randn(64, 4, generator=gen), torch.randint(0, 2, (64,), generator=gen)
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
def train_epoch(epoch):
    if str(epoch) == os.environ.get("KILL_AT"):
        os.kill(os.getpid(), signal.SIGKILL)
    idx = torch.randperm(64, generator=gen)[:32]
    loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    return {"train/loss": loss.item()}
def validate(epoch):
    return {"val/acc": (model(x).argmax(1) == y).float().mean().item()}
train(model, opt, sched, gen, train_epoch, validate, epochs=epochs, monitor="val/acc",
      checkpoint=Path("checkpoints/toy.pt"), live_dir=Path("dvclive/toy"),
      run_id=fingerprint({"epochs": epochs}, []), keep="last")
Path("models").mkdir(exist_ok=True)
json.dump([round(v, 6) for v in model.weight.flatten().tolist()], open("models/toy.json", "w"))
"""


def _checkpoint_options() -> list[dict]:
    """The options of every checkpoints/ output of the project's dvc.yaml."""
    return [opts for body in stage_bodies().values() for path, opts in entries(body, "outs")
            if path.startswith("checkpoints/")]


def test_every_checkpoint_is_persistent_and_outside_dvc_cache() -> None:
    options = _checkpoint_options()
    assert len(options) >= 4  # pretrain, pretrain_imagenet, finetune, distill
    assert all(o.get("persist") is True and o.get("cache") is False for o in options), options


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
         ok: bool = True) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # `dvc` for the queue
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path, **(env or {})})
    if ok:
        assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def _project(root: Path) -> Path:
    """A git + DVC project with the toy stage, run once and committed (the 'other machine')."""
    root.mkdir()
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], root)
    _run(["git", "config", "user.email", "t@t"], root)
    _run(["git", "config", "user.name", "t"], root)
    _run([*dvc, "init", "-q"], root)
    _run([*dvc, "config", "core.autostage", "true"], root)
    (root / "toy.py").write_text(TOY_STAGE)
    (root / "params.yaml").write_text(yaml.safe_dump({"train": {"epochs": 3}}))
    checkpoint = _checkpoint_options()[0]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"toy": {
        "cmd": f"{sys.executable} toy.py", "deps": ["toy.py"], "params": ["train.epochs"],
        "outs": ["models/toy.json", {"checkpoints/toy.pt": checkpoint},
                 {"dvclive/toy": {"cache": False}}]}}}))
    (root / ".gitignore").write_text("/checkpoints\n/dvclive\n")
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "toy stage"], root)  # dvclive wants a commit to sit on
    _run([*dvc, "repro", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "toy run"], root)
    return root


def _queue(clone: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Queue the experiment, run the queue to its end with a worker of this `env`, and return
    the experiment's log (returncode 0 when it succeeded; then it is applied to the workspace)."""
    dvc = [sys.executable, "-m", "dvc"]
    name = f"toy{time.monotonic_ns()}"
    _run([*dvc, "exp", "run", "--queue", "-n", name, "-S", "train.epochs=6"], clone, env)
    _run([*dvc, "queue", "start"], clone, env)
    deadline = time.monotonic() + 240
    row = ""
    while time.monotonic() < deadline:
        status = _run([*dvc, "queue", "status"], clone, env).stdout
        row = next((line for line in status.splitlines() if name in line), "")
        if re.search(r"Success|Failed", row):
            break
        time.sleep(2)
    _run([*dvc, "queue", "stop"], clone, env)  # the next call starts a worker with its own env
    while "0 active, 0 idle" not in _run([*dvc, "queue", "status"], clone, env).stdout:
        assert time.monotonic() < deadline, "the queue worker did not stop"
        time.sleep(1)
    done = _run([*dvc, "queue", "logs", name], clone, env, ok=False)
    done.returncode = 0 if "Success" in row else 1
    if done.returncode == 0:
        _run([*dvc, "exp", "apply", name], clone, env)
    return done


def _exp_run(clone: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "dvc", "exp", "run", "-S", "train.epochs=6"], clone, env,
                ok=False)


def _repro(clone: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["train"]["epochs"] = 6
    (clone / "params.yaml").write_text(yaml.safe_dump(params))
    return _run([sys.executable, "-m", "dvc", "repro"], clone, env, ok=False)


def _clone(origin: Path, dest: Path) -> Path:
    _run(["git", "clone", "-q", str(origin), str(dest)], dest.parent)
    assert not (dest / ".dvc/cache").exists()  # nothing of the origin's cache came along
    return dest


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _project(tmp_path_factory.mktemp("resume-dvc") / "origin")


@pytest.fixture(scope="module")
def straight(origin: Path) -> str:
    """The model of an uninterrupted 6-epoch run (`dvc repro` in a fresh clone): every command's
    resumed run must end with it, the toy stage being deterministic."""
    clone = _clone(origin, origin.parent / "straight")
    store = origin.parent / "store-straight"
    done = _repro(clone, {"CATDOG_RESUME_DIR": str(store)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert not list(store.glob("*.pt"))  # a finished run keeps nothing
    return (clone / "models/toy.json").read_text()


@pytest.mark.parametrize("command", [_exp_run, _repro, _queue], ids=["exp-run", "repro", "queue"])
def test_a_killed_run_resumes_in_a_fresh_clone(tmp_path: Path, origin: Path, straight: str,
                                               command: Callable) -> None:
    clone = _clone(origin, tmp_path / "killed")
    store = tmp_path / "store"
    env = {"CATDOG_RESUME_DIR": str(store)}
    first = command(clone, env | {"KILL_AT": "4"})
    assert first.returncode != 0
    if command is not _queue:  # a queued experiment's copy of the tree is gone with it
        assert (clone / "checkpoints/toy.pt").is_file(), "the kill left no checkpoint"
    assert list(store.glob("*.pt")), "nothing kept for a resume"
    second = command(clone, env)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    log = second.stdout + second.stderr
    assert "resuming from" in log and "after epoch 3" in log, log[-2000:]
    assert not list(store.glob("*.pt"))  # a finished run keeps nothing
    if command is not _queue:  # (the queue's dvclive curves stay in its copy of the tree)
        steps = (clone / "dvclive/toy/plots/metrics/val/acc.tsv").read_text().splitlines()[1:]
        assert [line.split()[0] for line in steps] == [str(s) for s in range(6)]
    assert (clone / "models/toy.json").read_text() == straight

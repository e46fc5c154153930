"""One short CPU run, pinned: SimCLR pretraining then the fine-tune from its encoder, through the
stages' own code, must give the numbers recorded before the GPU-path changes (the sync-free
NT-Xent, cuDNN benchmark, TF32, fused optimizers, device-resident monitor images), which are
meant to act on CUDA only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from conftest import committed_params, save_training_splits

from catdog import simclr, supervised
from catdog.models import load_model

# The pre-change values: recorded on the code before the GPU-path work (4c88f67; the same bits at
# 7c52d0f^, before its first part) on a 2-core x86 CPU, and reproduced there bit for bit after it.
PRE_CHANGE = {
    "pretrain 1 epoch": 1,
    "pretrain 1 train/loss": 3.5905134677886963,
    "pretrain 1 val/knn_acc": 0.5833333134651184,
    "pretrain 2 epoch": 2,
    "pretrain 2 train/loss": 4.35251522064209,
    "pretrain 2 val/knn_acc": 0.3333333432674408,
    "pretrain 2 val/probe_acc": 0.25,
    "pretrain 2 heldout/probe_agree": 0.5,
    "finetune 1 epoch": 1,
    "finetune 1 train/loss": 1.0274372100830078,
    "finetune 1 val/acc": 0.5,
    "finetune 1 val/loss": 0.7141279578208923,
    "finetune 1 val/score": 0.4992858720421791,
    "finetune 2 epoch": 2,
    "finetune 2 train/loss": 0.7686367034912109,
    "finetune 2 val/acc": 0.5,
    "finetune 2 val/loss": 1.0591117143630981,
    "finetune 2 val/score": 0.4989408882856369,
    "weights": 1367201.4362200843,
}
# Another CPU's kernels (oneDNN picks them by instruction set) may move the last bits; bf16 or
# TF32 would move these numbers by 1e-3 or more, a changed recipe further still.
REL = 1e-4


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """compute.threads 1: the sums run in one fixed order on any core count; restored after."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_zip: Path, one_thread: None
              ) -> Path:
    params = committed_params()
    params["compute"].update({"device": "cpu", "precision": "fp32", "threads": 1, "checkpoint_every": 0})
    params["pretrain"].update({"epochs": 2, "warmup_epochs": 1, "batch_size": 16, "image_size": 32,
                               "knn_k": 5})
    params["finetune"].update({"epochs": 2, "batch_size": 8, "image_size": 32})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    save_training_splits(shared_zip)
    return tmp_path


def record_histories(monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, float]]]:
    """Every training run's per-epoch history, in run order."""
    histories: list[list[dict[str, float]]] = []
    real = simclr.train

    def recording(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)
        histories.append(result.history)
        return result

    monkeypatch.setattr(simclr, "train", recording)
    monkeypatch.setattr(supervised, "train", recording)
    return histories


def run_numbers(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """pretrain, then finetune simclr: each epoch's metrics ("<run> <epoch> <metric>", learning
    rates left out) and the fine-tuned weights' squared norm."""
    from catdog.stages import finetune, pretrain

    histories = record_histories(monkeypatch)
    pretrain.main([])
    finetune.main(["simclr"])
    net, _ = load_model("models/simclr.pt")
    weights = sum(p.double().square().sum().item() for p in net.parameters())  # squared norm
    out = {f"{run} {epoch} {key}": value
           for run, history in zip(("pretrain", "finetune"), histories, strict=True)
           for epoch, row in enumerate(history, 1) for key, value in row.items()
           if not key.startswith("lr")}
    return out | {"weights": weights}


def recorded_cpu() -> bool:
    """Whether this CPU has the instruction set the values were recorded on (AVX512-BF16, the
    AMD EPYC of 2026-12-02). On an AVX2-only EPYC (Zen 2) the first epoch's loss agrees, then
    other oneDNN kernels move the later steps' last bits, which two SGD steps at lr 0.3 grow."""
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def test_a_short_cpu_run_gives_the_pre_change_numbers(workspace: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    got = run_numbers(monkeypatch)
    if recorded_cpu():
        assert got == pytest.approx(PRE_CHANGE, rel=REL)
        return
    # Elsewhere: the first epoch matches the record, and the run repeats itself bit for bit.
    first = "pretrain 1 train/loss"
    assert got[first] == pytest.approx(PRE_CHANGE[first], rel=REL)
    assert run_numbers(monkeypatch) == got

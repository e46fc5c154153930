"""Precision per machine (catdog.precision) and checkpoints tied to the runtime they were made on."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from catdog import precision
from catdog.train_loop import runtime, seed_everything, train

CPU = torch.device("cpu")
REAL_CPU_LACKS_BF16 = precision.cpu_lacks_bf16  # the fixture below fakes it for the probe's tests


@pytest.fixture(autouse=True)
def _probe_as_on_a_bf16_cpu_then_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test probes as on a CPU with bf16 arithmetic (unless it says otherwise), then
    leaves fp32 set."""
    monkeypatch.setattr(precision, "cpu_lacks_bf16", lambda: None)
    yield
    precision.set_bf16(CPU, False)


def _step_faster_in(fast: str) -> Callable[[], None]:
    def step() -> None:
        time.sleep(0.004 if precision.name(CPU) == fast else 0.02)
    return step


@pytest.mark.parametrize("fast", ["bf16", "fp32"])
def test_auto_keeps_the_precision_that_is_faster(fast: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert precision.choose("auto", CPU, _step_faster_in(fast), "a fake step") is (fast == "bf16")
    assert precision.name(CPU) == fast
    assert f"precision: {fast} (auto: bf16 " in capsys.readouterr().err


def test_a_load_spike_in_one_round_does_not_flip_the_choice() -> None:
    calls = {"fp32": 0}

    def step() -> None:  # fp32 is 3x faster, but its first round runs under a 10x load spike
        if precision.name(CPU) == "fp32":
            calls["fp32"] += 1
            time.sleep(0.06 if calls["fp32"] <= 1 + precision.PROBE_STEPS else 0.002)
        else:
            time.sleep(0.006)
    assert precision.choose("auto", CPU, step, "a spiky step") is False
    assert calls["fp32"] == precision.PROBE_ROUNDS * (1 + precision.PROBE_STEPS)


def test_a_hopeless_bf16_is_timed_for_one_round_only(capsys: pytest.CaptureFixture[str]) -> None:
    calls = {"fp32": 0, "bf16": 0}

    def step() -> None:  # bf16 at 1/10 of fp32: a chip without bf16 arithmetic
        calls[precision.name(CPU)] += 1
        time.sleep(0.02 if precision.name(CPU) == "bf16" else 0.002)
    assert precision.choose("auto", CPU, step, "a step without bf16 arithmetic") is False
    assert calls == {"fp32": 1 + precision.PROBE_STEPS, "bf16": 1 + precision.PROBE_STEPS}
    assert "precision: fp32 (auto: bf16 0.1" in capsys.readouterr().err


def test_a_cpu_without_bf16_arithmetic_is_not_probed(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def step() -> None:
        raise AssertionError("a CPU without bf16 arithmetic must not run the probe")
    monkeypatch.setattr(precision, "cpu_lacks_bf16", REAL_CPU_LACKS_BF16)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert precision.choose("auto", CPU, step, "MobileNetV2 training") is False
    assert "precision: fp32 (auto: this CPU's torch runs AVX2" in capsys.readouterr().err
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert precision.cpu_lacks_bf16() is None  # AVX-512 CPUs are probed (bf16 0.6-3.9x there)


def test_forced_precision_is_not_probed() -> None:
    def step() -> None:
        raise AssertionError("a forced precision must not run the probe")
    assert precision.choose("bf16", CPU, step) is True
    assert precision.choose("fp32", CPU, step) is False


def test_autocast_follows_the_choice() -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 2)
    precision.set_bf16(CPU, True)
    with precision.autocast(CPU):
        assert (a @ b).dtype == torch.bfloat16
    precision.set_bf16(CPU, False)
    with precision.autocast(CPU):
        assert (a @ b).dtype == torch.float32


def _run(tmp_path: Path, epochs: int) -> list[dict]:
    generator = seed_everything(0, CPU)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    x = torch.randn(16, 3, generator=generator)

    def train_epoch(epoch: int) -> dict[str, float]:
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"train/loss": float(loss.detach())}

    result = train(model, optimizer, scheduler, generator, train_epoch,
                   lambda epoch: {"val/score": float(-model(x).pow(2).mean().detach())},
                   epochs=epochs, monitor="val/score", checkpoint=tmp_path / "ckpt.pt",
                   live_dir=tmp_path / "live", run_id="same-params")
    return result.history


def test_checkpoint_from_another_runtime_is_not_resumed(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path, epochs=1)
    blob = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert blob["runtime"] == runtime(CPU) == {"device": "cpu", "precision": "fp32",
                                               "torch": torch.__version__}
    capsys.readouterr()
    _run(tmp_path, epochs=2)  # same runtime: resumes after epoch 1
    assert "resuming from" in capsys.readouterr().err
    blob = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    blob["runtime"] = {"device": "cuda", "precision": "bf16", "torch": "2.11.0"}
    torch.save(blob, tmp_path / "ckpt.pt")
    history = _run(tmp_path, epochs=3)
    err = capsys.readouterr().err
    assert "made on cuda/bf16/2.11.0, this run is cpu/fp32/" in err and "starting fresh" in err
    assert [row["epoch"] for row in history] == [1, 2, 3]  # trained from epoch 1 again

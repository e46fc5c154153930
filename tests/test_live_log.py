"""The stand-in logger writes what dvclive writes, so training logs alike without dvclive."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from catdog.live_log import PlainLive, open_live

HISTORY = [{"train/loss": 0.9, "lr": 0.1, "val/acc": 0.5},
           {"train/loss": 0.7, "lr": 0.05, "val/acc": 0.625},
           {"train/loss": 0.6, "lr": 0.0, "val/acc": 0.6, "heldout/probe_agree": 0.58}]


def _log(live: object) -> None:
    for row in HISTORY:
        for key, value in row.items():
            live.log_metric(key, value)
        live.next_step()


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_plain_logger_writes_the_files_dvclive_writes(tmp_path: Path) -> None:
    from dvclive import Live

    _log(Live(str(tmp_path / "dvclive"), dvcyaml=None, save_dvc_exp=False, report=None))
    _log(PlainLive(tmp_path / "plain"))
    theirs, ours = _tree(tmp_path / "dvclive"), _tree(tmp_path / "plain")
    assert set(ours) == set(theirs) == {
        "metrics.json", "plots/metrics/train/loss.tsv", "plots/metrics/lr.tsv",
        "plots/metrics/val/acc.tsv", "plots/metrics/heldout/probe_agree.tsv"}
    for name in theirs:
        assert ours[name] == theirs[name], name


def test_opening_clears_an_earlier_runs_curves(tmp_path: Path) -> None:
    _log(PlainLive(tmp_path))
    live = PlainLive(tmp_path)
    live.log_metric("val/acc", 0.7)
    live.next_step()
    assert (tmp_path / "plots/metrics/val/acc.tsv").read_text() == "step\tacc\n0\t0.7\n"
    assert not (tmp_path / "plots/metrics/lr.tsv").exists()


def test_without_dvclive_the_stand_in_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_dvclive(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("dvclive"):
            raise ImportError("No module named 'dvclive'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dvclive)
    assert isinstance(open_live(tmp_path), PlainLive)

"""The training curves' logger: dvclive where it is installed, else a stand-in that writes the same
files, so that a machine without dvc and dvclive (e.g. a GPU box that gets only the working tree
and torch) trains and logs alike.

Files, as dvclive writes them with `Live(dir, dvcyaml=None, save_dvc_exp=False, report=None)`:
  <dir>/plots/metrics/<key>.tsv   "step\\t<last part of key>" then one row per logged step;
  <dir>/metrics.json              the latest value of each key, nested on "/", plus "step".
Opening a logger clears what an earlier run left there (the trainer replays its history on resume).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Protocol


class Logger(Protocol):
    def log_metric(self, name: str, val: float) -> None: ...

    def next_step(self) -> None: ...


class PlainLive:
    """dvclive's files for log_metric / next_step, in plain Python."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        shutil.rmtree(self.dir / "plots", ignore_errors=True)
        (self.dir / "metrics.json").unlink(missing_ok=True)
        self.step = 0
        self.summary: dict = {}  # latest values, nested on "/", in first-logged order, as dvclive's

    def log_metric(self, name: str, val: float) -> None:
        path = self.dir / "plots" / "metrics" / f"{name}.tsv"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"step\t{name.rsplit('/', 1)[-1]}\n")
        with path.open("a") as f:
            f.write(f"{self.step}\t{val}\n")
        *groups, leaf = name.split("/")
        node = self.summary
        for group in groups:
            node = node.setdefault(group, {})
        node[leaf] = val

    def next_step(self) -> None:
        self.summary["step"] = self.step
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "metrics.json").write_text(json.dumps(self.summary, indent=4) + "\n")
        self.step += 1


def open_live(directory: str | Path) -> Logger:
    """dvclive's Live on `directory` when dvclive imports, else PlainLive."""
    try:
        from dvclive import Live
    except ImportError:
        return PlainLive(directory)
    return Live(str(directory), dvcyaml=None, save_dvc_exp=False, report=None)

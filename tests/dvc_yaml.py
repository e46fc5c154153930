"""What the dvc.yaml tests share: the stages as written, and the module each stage runs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def stage_bodies() -> dict[str, dict]:
    """Stage name -> its body (a foreach stage's `do`, unexpanded)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def stage_items(name: str) -> dict[str, dict]:
    """A foreach stage's items by key ({} for a plain stage)."""
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][name]
    return stage.get("foreach") or {} if isinstance(stage.get("foreach"), dict) else {}


def fill_item(text: str, key: str, item: dict) -> str:
    """`text` with ${key} and ${item.<field>} filled in for one foreach item."""
    text = text.replace("${key}", key)
    return re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), text)


def module_file(module: str) -> Path:
    """src/ path of a dotted module name."""
    return SRC / (module.replace(".", "/") + ".py")


def stage_module(body: dict) -> str:
    """The module a stage's command runs (`python -m <module>`)."""
    return re.search(r"python -m (\S+)", body["cmd"]).group(1)


def entries(body: dict, key: str) -> list[tuple[str, dict]]:
    """(path, options) of each item a stage lists under key (outs, metrics, plots, deps)."""
    return [next(iter(i.items())) if isinstance(i, dict) else (i, {}) for i in body.get(key) or []]

"""dvc.yaml's stage commands, run in this process: what the device run (catdog.device_run) and its
CPU-side finish (catdog.device_finish) use where DVC is not installed or a process per stage costs
too much.

`command("distill-kd")` is the `python -m ...` of dvc.yaml's `distill` loop for key `kd`, with
`${key}`, `${item}` and `${item.<field>}` filled in (the names metrics/time/ uses, as
catdog.methods does). `run(command, folder)` runs it as `python -m` would (runpy, `__main__`),
with `folder` as the working directory: a folder laid out as DVC's workspace (params.yaml, data/,
models/) gets the stage's outputs where DVC would put them. The stages stay leaves: nothing imports
them; a stage's error (SystemExit) reaches the caller.
"""

from __future__ import annotations

import contextlib
import re
import runpy
import shlex
import sys
import warnings
from pathlib import Path

from catdog.params import read_yaml

DVC_YAML = Path(__file__).resolve().parents[2] / "dvc.yaml"  # the checkout's pipeline


def stages(dvc_yaml: Path = DVC_YAML) -> dict:
    """dvc.yaml's `stages` section, as written."""
    return (read_yaml(dvc_yaml.read_text()) or {})["stages"]


def _fill(text: str, key: str, item: object) -> str:
    text = text.replace("${key}", key)
    if isinstance(item, dict):
        return re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), text)
    return text.replace("${item}", str(item))


def _expand(name: str, field: str, dvc_yaml: Path) -> str | list[str]:
    """A stage's `field` (cmd, deps, ...) with its foreach item filled in; 'finetune-simclr' or
    'finetune@simclr' is the `finetune` loop's item `simclr`."""
    table = stages(dvc_yaml)
    group, key = (name, "") if name in table else name.replace("@", "-").partition("-")[::2]
    if group not in table:
        raise KeyError(f"dvc.yaml has no stage {name!r}")
    body = table[group]
    value = body.get("do", body).get(field, [])
    if "foreach" not in body:
        return value
    items = body["foreach"]
    if isinstance(items, dict):
        if key not in items:
            raise KeyError(f"dvc.yaml stage {group!r} has no item {key!r}")
        item = items[key]
    else:  # a list (or a ${vars} list): the key is the item itself
        item = key
    if isinstance(value, str):
        return _fill(value, key, item)
    return [_fill(v if isinstance(v, str) else next(iter(v)), key, item) for v in value]


def deps(name: str, dvc_yaml: Path = DVC_YAML) -> list[str]:
    """The paths a stage depends on in dvc.yaml, its foreach item filled in."""
    return list(_expand(name, "deps", dvc_yaml))


def command(name: str, dvc_yaml: Path = DVC_YAML) -> list[str]:
    """['catdog.stages.finetune', 'simclr'] for stage 'finetune-simclr' (or 'finetune@simclr'):
    the module and arguments of its `python -m` command in dvc.yaml."""
    cmd = str(_expand(name, "cmd", dvc_yaml))
    words = shlex.split(cmd)
    if words[:2] != ["python", "-m"]:
        raise ValueError(f"stage {name!r}: {cmd!r} is not a `python -m` command")
    return words[2:]


def run(argv: list[str], folder: Path) -> None:
    """Run `python -m <argv[0]> <argv[1:]>` in this process, in `folder`."""
    module, *args = argv
    saved = sys.argv
    sys.argv = [module, *args]
    try:
        with contextlib.chdir(folder), warnings.catch_warnings():
            # a stage a test imported before is run afresh all the same, as `python -m` would
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = saved

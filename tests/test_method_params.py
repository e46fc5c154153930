"""Params per method, as DVC sees them: changing a param that only one method reads leaves every
other stage up to date. Checked with `dvc status` itself on a throwaway clone whose dvc.lock is
first brought level with its params.yaml (every stage's params recorded as they are now)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc_yaml import REPO, stage_items

# A method-only key, the value to change it to, and the only stage whose params it may change.
METHOD_ONLY = [("finetune.backbone_lr", 0.37, "finetune@simclr")]


def level_lock(root: Path) -> None:
    """Record every stage's params in dvc.lock at their params.yaml values (other deps untouched)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stages = list(repo.index.stages)
        for stage in stages:
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency):
                    dep.save()
        # one write of dvc.lock for all stages (a dump per stage rewrites the whole file each time)
        assert {stage.dvcfile.path for stage in stages} == {str(root / "dvc.yaml")}
        stages[0].dvcfile.dump_stages(stages, update_pipeline=False)


def params_changed(root: Path) -> dict[str, dict]:
    """Stage -> its params.yaml changes, from `dvc status --json`."""
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root,
                          capture_output=True, text=True, check=True)
    out = {}
    for stage, changes in json.loads(done.stdout).items():
        for change in changes:
            if isinstance(change, dict) and "params.yaml" in (change.get("changed deps") or {}):
                out[stage] = change["changed deps"]["params.yaml"]
    return out


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clone") / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")  # the stages as they are in this tree
    level_lock(root)
    return root


def test_a_level_lock_shows_no_params_change(clone: Path) -> None:
    assert params_changed(clone) == {}


@pytest.mark.parametrize(("key", "value", "owner"), METHOD_ONLY)
def test_changing_a_method_only_param_reruns_that_method_alone(clone: Path, key: str, value: float,
                                                               owner: str) -> None:
    path = clone / "params.yaml"
    before = path.read_text()
    params = yaml.safe_load(before)
    group, name = key.split(".")
    assert params[group][name] != value
    params[group][name] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        changed = params_changed(clone)
    finally:
        path.write_text(before)
    assert set(changed) == {owner}, f"changing {key} changes {sorted(changed)}"
    assert key in changed[owner]


def test_the_method_only_keys_are_those_dvc_yaml_names() -> None:
    owns = {item["own"] for item in stage_items("finetune").values()}
    shared = {k for k in owns if sum(i["own"] == k for i in stage_items("finetune").values()) > 1}
    assert {key for key, _, _ in METHOD_ONLY} == owns - shared

"""dvc.yaml declares the teacher and every student as a DVC model artifact, under a name DVC
accepts, pointing at the file its stage writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml
from dvc_yaml import REPO, entries, stage_bodies

NAME = re.compile(r"^[a-z0-9]([a-z0-9-/]*[a-z0-9])?$")  # DVC's rule for artifact names


def _dvc_yaml() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_model_a_stage_writes_is_an_artifact() -> None:
    doc = _dvc_yaml()
    students = doc["vars"][0]["students"]
    artifacts = doc["artifacts"]
    paths = {a["path"] for a in artifacts.values()}
    assert paths == {"models/teacher.pt"} | {f"models/{m}.pt" for m in students}
    for name, artifact in artifacts.items():
        assert NAME.match(name), name
        assert artifact["type"] == "model" and artifact["desc"] and artifact["labels"], name
    def keys(stage: str) -> list[str]:  # a foreach stage's keys (a dict's), else one plain stage
        loop = doc["stages"][stage].get("foreach")
        return list(loop) if isinstance(loop, dict) else [""]

    written = {path.replace("${key}", key) for stage, body in stage_bodies().items()
               for key in keys(stage) for path, _ in entries(body, "outs")}
    assert paths <= written, sorted(paths - written)


def test_dvc_itself_reads_the_artifacts() -> None:
    """DVC's own reader of dvc.yaml finds each artifact with its path and type."""
    code = ("import json, sys; from dvc.repo import Repo; "
            "found = {n: a.path for d in Repo(sys.argv[1]).artifacts.read().values() "
            "for n, a in d.items() if a.type == 'model'}; print(json.dumps(found))")
    done = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {name: a["path"] for name, a in _dvc_yaml()["artifacts"].items()}

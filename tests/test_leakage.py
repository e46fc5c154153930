"""The test split never influences training, by the pipeline's own graph (dvc.yaml).

A stage depends on the test split if it lists data/prepared/test.pt in its deps, or lists an
output of a stage that does (transitively). Only the scoring stages may: every stage that
trains or feeds training is checked, and so is every other stage DVC would run. (The
training-stage tests also run pretrain, finetune and distill in a workspace that has no test
split at all, so a training stage that read it anyway would fail there.)"""

from __future__ import annotations

from pathlib import Path

import yaml
from dvc_yaml import entries

REPO = Path(__file__).resolve().parents[1]
TEST_FILE = "data/prepared/test.pt"
SCORING = {"teacher_score", "evaluate", "featuremaps"}  # they score on test or draw test images


def outs_of(body: dict) -> list[str]:
    """The output paths of a stage (outs, metrics and plots), without their options."""
    return [path for key in ("outs", "metrics", "plots") for path, _ in entries(body, key)]


def expand(stages: dict) -> dict[str, dict]:
    """Stage name -> body, a foreach stage once per key ('distill@kd'), ${key}/${item.x} filled."""
    out = {}
    for name, stage in stages.items():
        if "foreach" not in stage:
            out[name] = stage
            continue
        items = stage["foreach"]
        items = items if isinstance(items, dict) else {k: k for k in items}
        for key, item in items.items():
            text = yaml.safe_dump(stage["do"]).replace("${key}", str(key))
            if isinstance(item, dict):
                for field, value in item.items():
                    text = text.replace("${item." + field + "}", str(value))
            else:
                text = text.replace("${item}", str(item))
            out[f"{name}@{key}"] = yaml.safe_load(text)
    return out


def stages_reading_test(stages: dict[str, dict]) -> set[str]:
    """Stages that depend on TEST_FILE directly or through another stage's output."""
    producer = {path: name for name, body in stages.items() for path in outs_of(body)}
    readers: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, body in stages.items():
            deps = body.get("deps") or []
            if name not in readers and (TEST_FILE in deps
                                        or any(producer.get(d) in readers for d in deps)):
                readers.add(name)
                changed = True
    return readers


def pipeline() -> dict[str, dict]:
    """dvc.yaml's stages, foreach expanded, with its `students` var filled in."""
    text = (REPO / "dvc.yaml").read_text()
    students = yaml.safe_load(text)["vars"][0]["students"]
    return expand(yaml.safe_load(text.replace("${students}", str(students)))["stages"])


def test_only_scoring_stages_depend_on_the_test_split_even_through_other_outputs() -> None:
    stages = pipeline()
    readers = stages_reading_test(stages)
    assert readers, "no stage reads the test split: the graph was not read"
    assert {name.split("@")[0] for name in readers} == SCORING
    for training in ("teacher", "teacher_logits", "pretrain", "finetune@simclr", "distill@kd",
                     "distill@simclr_kd"):
        assert training in stages and training not in readers


def test_the_graph_check_sees_a_leak_through_an_intermediate_output() -> None:
    stages = {
        "prepare": {"deps": ["raw"], "outs": [TEST_FILE, "labeled.pt"]},
        "score": {"deps": [TEST_FILE, "model.pt"], "outs": [{"scores.json": {"cache": False}}]},
        "calibrate": {"deps": ["scores.json"], "outs": ["calibration.pt"]},  # reads a test output
        "train": {"deps": ["labeled.pt", "calibration.pt"], "outs": ["model2.pt"]},
        "clean": {"deps": ["labeled.pt"], "outs": ["model.pt"]},
    }
    assert stages_reading_test(stages) == {"score", "calibrate", "train"}

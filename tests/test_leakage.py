"""The test split never influences training: only the scoring stages may read it.

(The training-stage tests also run pretrain, finetune and distill in a workspace that has no
test split at all, so a training stage that touched it would fail there.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCORING = {"teacher", "evaluate", "featuremaps"}  # they score on test or draw test images
TEST_FILE = "data/prepared/test.pt"


def test_only_scoring_stages_depend_on_the_test_split() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    readers = {name for name, stage in stages.items()
               if TEST_FILE in str(stage.get("deps", stage.get("do", {}).get("deps", [])))}
    assert readers == SCORING
    for name in ("pretrain", "finetune", "distill"):
        assert TEST_FILE not in str(stages[name])


def test_only_scoring_code_loads_the_test_split() -> None:
    pattern = re.compile(r"""(load_split|split_path)\(\s*["']test["']|test\.pt""")
    readers = {p.relative_to(REPO / "src/catdog").as_posix()
               for p in (REPO / "src/catdog").rglob("*.py") if pattern.search(p.read_text())}
    assert readers <= {"stages/teacher.py", "stages/evaluate.py", "stages/featuremaps.py"}
    assert "stages/evaluate.py" in readers

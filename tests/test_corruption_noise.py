"""scripts/corruption_noise.py: the corruption score it reports for n images is the evaluate
stage's for evaluate.corruption_images = n, and its bootstrap standard error is a standard error."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import committed_params
from test_evaluate import fitted_student

from catdog.cache import save_split, split_path
from catdog.models import save_model
from catdog.stages import evaluate

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "corruption_noise.py"


def _script():
    spec = importlib.util.spec_from_file_location("corruption_noise", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bootstrap_se_matches_the_binomial_standard_error() -> None:
    rng = np.random.default_rng(1)
    right = (np.arange(400) % 4 != 0).astype(float)  # 75 % of 400 images right
    se = _script().bootstrap_se(right, rounds=4000, rng=rng)
    assert se == pytest.approx(np.sqrt(0.75 * 0.25 / 400), rel=0.1)
    assert _script().bootstrap_se(np.full(50, 0.6), rounds=100, rng=rng) == pytest.approx(0.0, abs=1e-12)


def test_score_for_n_images_is_the_evaluate_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   tiny_split) -> None:
    params = committed_params()
    params["compute"]["device"] = "cpu"
    params["evaluate"]["corruption_images"] = len(tiny_split)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    save_split(split_path("test"), tiny_split)
    save_model("models/m.pt", fitted_student(tiny_split, 48), method="m", image_size=48)
    shutil.copy("models/m.pt", "models/m2.pt")  # the same model under another name
    evaluate.main(["m"])
    stage_score = json.loads(Path("metrics/m.json").read_text())["corruption_accuracy"]

    n = len(tiny_split)
    monkeypatch.setattr(sys, "argv", ["corruption_noise.py", "models/m.pt", "models/m2.pt",
                                      "--test", str(split_path("test")), "--images", str(n),
                                      "--sizes", "8", str(n), "--rounds", "200",
                                      "--json", "noise.json"])
    _script().main()
    rows = {row["n"]: row for row in json.loads(Path("noise.json").read_text())}
    assert rows[n]["models/m.pt"]["score"] == pytest.approx(stage_score)
    assert 0.0 < rows[8]["models/m.pt"]["se"] < 0.5  # the fitted student is right on some, not all
    assert rows[8]["models/m.pt - models/m2.pt"] == {"diff": 0.0, "se": 0.0}  # a model against itself

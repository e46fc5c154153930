"""params.yaml validation: every bad value is named in one line, before any work."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import committed_params

from catdog.params import ParamError, load_params, validate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def params() -> dict:
    return committed_params()


def test_repo_params_are_valid() -> None:
    assert load_params(REPO / "params.yaml")["data"]["labeled"] == 420


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("data.size", "big", "data.size='big' has the wrong type"),
        ("data.size", 0, "data.size=0 is out of range"),
        ("data.test", 5001, "data.test=5001 must be even"),
        ("distill.temperature", 0, "distill.temperature=0 is out of range: allowed > 0.0"),
        ("distill.temperature", -1.5, "distill.temperature=-1.5 is out of range"),
        ("distill.alpha", 1.5, "distill.alpha=1.5 is out of range: allowed >= 0.0 and <= 1.0"),
        ("distill.alpha", -0.1, "distill.alpha=-0.1 is out of range"),
        ("finetune.batch_size", 0, "finetune.batch_size=0 is out of range"),
        ("pretrain.batch_size", -8, "pretrain.batch_size=-8 is out of range"),
        ("pretrain.epochs", True, "pretrain.epochs=True has the wrong type"),
        ("teacher.arch", "vgg16", "teacher.arch='vgg16' is out of range: allowed one of"),
        ("compute.device", "tpu", "compute.device='tpu' is out of range"),
        ("compute.precision", "fp16", "compute.precision='fp16' is out of range: allowed one of auto"),
        ("distill.optimizer", "lamb", "distill.optimizer='lamb' is out of range: allowed one of adamw, sgd"),
        ("distill.eval_size", 16, "distill.eval_size=16 is out of range: allowed 0 (= image_size)"),
        ("data.size", 12000, "data.size=12000 exceeds data.max_size=10000"),
    ],
)
def test_bad_values_are_named(params: dict, key: str, value: object, message: str) -> None:
    bad = copy.deepcopy(params)
    group, name = key.split(".")
    bad[group][name] = value
    with pytest.raises(ParamError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(bad)


def test_unknown_and_missing_keys(params: dict) -> None:
    bad = copy.deepcopy(params)
    bad["distill"]["temprature"] = 4.0
    with pytest.raises(ParamError, match="unknown parameter 'distill.temprature'"):
        validate(bad)
    bad = copy.deepcopy(params)
    del bad["data"]["seed"]
    with pytest.raises(ParamError, match="data.seed is missing"):
        validate(bad)


def test_feature_distillation_needs_the_teachers_feature_map_of_the_crop(params: dict) -> None:
    params["distill"].update({"feature_weight": 1.0, "teacher_mode": "cached"})
    with pytest.raises(ParamError, match="needs the teacher's feature map"):
        validate(params)
    params["teacher_crops"]["features"] = True  # cached mode: the whole images' stored maps
    validate(params)
    params["distill"]["teacher_mode"] = "crops"  # no feature maps are stored per crop
    params["teacher_crops"]["crops"] = 4
    with pytest.raises(ParamError, match="teacher_mode=online, or cached"):
        validate(params)
    params["distill"]["teacher_mode"] = "online"
    params["teacher_crops"]["features"] = False
    validate(params)


def test_attention_transfer_needs_the_teachers_maps_of_the_students_crop(params: dict) -> None:
    params["distill"].update({"attention_weight": 500.0, "teacher_mode": "cached"})
    with pytest.raises(ParamError, match="needs the teacher's maps"):
        validate(params)
    params["teacher_crops"]["attention"] = True  # cached mode: the whole images' stored maps
    validate(params)
    params["distill"]["teacher_mode"] = "crops"
    params["teacher_crops"].update({"crops": 4, "attention": False})
    with pytest.raises(ParamError, match="teacher_crops.attention true"):
        validate(params)
    params["teacher_crops"]["attention"] = True
    validate(params)
    params["distill"]["teacher_mode"] = "online"
    validate(params)
    params["teacher_crops"]["attention"] = 1  # a number is no boolean
    with pytest.raises(ParamError, match="teacher_crops.attention=1 has the wrong type"):
        validate(params)


def test_crops_mode_needs_stored_crops(params: dict) -> None:
    params["distill"]["teacher_mode"] = "crops"
    params["teacher_crops"]["crops"] = 0
    with pytest.raises(ParamError, match="teacher_crops.crops > 0"):
        validate(params)


def test_warmup_must_be_shorter_than_training(params: dict) -> None:
    params["pretrain"]["warmup_epochs"] = params["pretrain"]["epochs"]
    with pytest.raises(ParamError, match="warmup_epochs"):
        validate(params)


def test_stage_exits_with_one_line_before_work(tmp_path: Path, params: dict) -> None:
    params["distill"]["alpha"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, "-m", "catdog.stages.prepare"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: distill.alpha=2 is out of range: allowed >= 0.0 and <= 1.0"
    assert not (tmp_path / "data").exists()


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_params(path)


def test_small_numbers_as_dvc_writes_them_are_floats(params: dict, tmp_path: Path) -> None:
    # `dvc exp run -S distill.weight_decay=0.00005` writes `5e-05`, a string to PyYAML's 1.1 rules.
    text = yaml.safe_dump(params).replace("weight_decay: 0.05", "weight_decay: 5e-05", 1)
    assert "5e-05" in text
    (tmp_path / "params.yaml").write_text(text)
    loaded = load_params(tmp_path / "params.yaml")
    assert 5e-05 in (loaded["finetune"]["weight_decay"], loaded["distill"]["weight_decay"])

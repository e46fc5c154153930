"""Load and validate params.yaml before any stage does work.

Every key the study knows is listed in SCHEMA with its type and allowed range.
A wrong type, an unknown key, a missing key or an out-of-range value stops the
stage with a one-line error that names the key, the value and what is allowed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading floats as YAML 1.2 does: `5e-05` (as DVC's `-S` writes a
    small number into params.yaml) is a float, not the string PyYAML 1.1 rules would make it."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    """Parse YAML text with YamlLoader (params.yaml, dvc.lock, profiles)."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass


def parse_assignment(text: str) -> tuple[str, Any]:
    """'distill.lr=5e-05' -> ('distill.lr', 5e-05): a `-S`-style PARAM=VALUE, the value read as
    params.yaml would hold it (read_yaml); SystemExit on text without a key and '='."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"error: want PARAM=VALUE, got {text!r}")
    return key, read_yaml(value)


class ParamError(ValueError):
    """A params.yaml value that the study cannot run with."""


@dataclass(frozen=True)
class Spec:
    """Type and allowed values of one parameter."""

    kind: type | tuple[type, ...]
    check: Callable[[Any], bool] = lambda v: True
    allowed: str = ""


def _int(lo: int, hi: int | None = None) -> Spec:
    rule = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
    return Spec(int, lambda v: v >= lo and (hi is None or v <= hi), rule)


def _float(lo: float, hi: float | None = None, lo_open: bool = False) -> Spec:
    def ok(v: float) -> bool:
        above = v > lo if lo_open else v >= lo
        return above and (hi is None or v <= hi)

    left = f"> {lo}" if lo_open else f">= {lo}"
    rule = left if hi is None else f"{left} and <= {hi}"
    return Spec((int, float), ok, rule)


def _choice(*options: str) -> Spec:
    return Spec(str, lambda v: v in options, "one of " + ", ".join(options))


_BOOL = Spec(bool, allowed="true or false")
_SEED = _int(0)
_EPOCHS = _int(1, 10_000)
_BATCH = _int(1, 65_536)
_PX = _int(32, 1024)
_LR = _float(0.0, 10.0, lo_open=True)
_WD = _float(0.0, 1.0)
_EVAL_PX = Spec(int, lambda v: v == 0 or 32 <= v <= 1024, "0 (= image_size) or in [32, 1024]")

SCHEMA: dict[str, Spec] = {
    "data.source": Spec(str, lambda v: bool(v.strip()), "a URL, a zip path or a folder path"),
    "data.seed": _SEED,
    "data.test": _int(2),
    "data.labeled": _int(2),
    "data.val": _int(2),
    "data.size": _int(1),
    "data.max_size": _int(1),
    "data.image_size": _PX,
    "data.near_duplicate_bits": _int(-1, 32),
    "data.heldout": _int(2),
    "compute.device": _choice("auto", "cpu", "cuda"),
    "compute.threads": _int(0, 1024),
    "compute.precision": _choice("auto", "fp32", "bf16"),
    "compute.checkpoint_every": _int(0, 10_000),
    "train.seed": _SEED,
    "student.stem_stride": _int(1, 2),
    "teacher.arch": _choice("efficientnet_lite2", "efficientnet_lite0", "mobilenet_v2", "resnet50"),
    "teacher.image_size": _PX,
    "teacher.batch_size": _BATCH,
    "teacher.seed": _SEED,
    "teacher_crops.crops": _int(0, 256),
    "teacher_crops.min_scale": _float(0.01, 1.0),
    "teacher_crops.seed": _SEED,
    "teacher_crops.attention": _BOOL,
    "teacher_crops.features": _BOOL,
    "pretrain.epochs": _EPOCHS,
    "pretrain.batch_size": _int(2, 65_536),
    "pretrain.lr": _LR,
    "pretrain.warmup_epochs": _int(0, 10_000),
    "pretrain.weight_decay": _WD,
    "pretrain.temperature": _float(0.0, 100.0, lo_open=True),
    "pretrain.image_size": _PX,
    "pretrain.proj_dim": _int(2, 8192),
    "pretrain.knn_k": _int(1, 1000),
    "pretrain.jitter": _float(0.0, 1.0),
    "pretrain.min_scale": _float(0.01, 1.0),
    "pretrain.probe_every": _int(1, 10_000),
    "pretrain_imagenet.epochs": _EPOCHS,
    "pretrain_imagenet.lr": _LR,
    "pretrain_imagenet.warmup_epochs": _int(0, 10_000),
    "finetune.epochs": _EPOCHS,
    "finetune.batch_size": _BATCH,
    "finetune.lr": _LR,
    "finetune.weight_decay": _WD,
    "finetune.patience": _int(1, 10_000),
    "finetune.image_size": _PX,
    "finetune.eval_size": _EVAL_PX,
    "finetune.optimizer": _choice("adamw", "sgd"),
    "finetune.backbone_lr": _float(0.0, 1.0, lo_open=True),
    "distill.epochs": _EPOCHS,
    "distill.batch_size": _BATCH,
    "distill.lr": _LR,
    "distill.weight_decay": _WD,
    "distill.temperature": _float(0.0, 100.0, lo_open=True),
    "distill.alpha": _float(0.0, 1.0),
    "distill.label_smoothing": _float(0.0, 0.5),
    "distill.patience": _int(1, 10_000),
    "distill.image_size": _PX,
    "distill.eval_size": _EVAL_PX,
    "distill.bn_calibration": _int(0, 100_000),
    "distill.optimizer": _choice("adamw", "sgd"),
    "distill.teacher_mode": _choice("cached", "online", "crops"),
    "distill.feature_weight": _float(0.0, 1000.0),
    "distill.attention_weight": _float(0.0, 10000.0),
    "evaluate.batch_size": _BATCH,
    "evaluate.corruption_images": _int(0),
    "evaluate.corruption_seed": _SEED,
    "featuremaps.channels": _int(1, 64),
}


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def validate(tree: Any) -> None:
    """Raise ParamError naming the first bad key, its value and the allowed range."""
    if not isinstance(tree, dict):
        raise ParamError("params.yaml must hold a mapping of stage groups (data:, teacher:, ...)")
    flat = flatten(tree)
    for key in flat:
        if key not in SCHEMA:
            raise ParamError(f"unknown parameter {key!r} in params.yaml (known: see src/catdog/params.py)")
    for key, spec in SCHEMA.items():
        if key not in flat:
            raise ParamError(f"parameter {key} is missing from params.yaml")
        value = flat[key]
        # bool is an int subclass in Python; never accept it for a number.
        if (isinstance(value, bool) and spec.kind is not bool) or not isinstance(value, spec.kind):
            want = spec.kind.__name__ if isinstance(spec.kind, type) else "number"
            raise ParamError(f"{key}={value!r} has the wrong type: expected {want}")
        if not spec.check(value):
            raise ParamError(f"{key}={value!r} is out of range: allowed {spec.allowed}")
    _check_combinations(flat)


def _check_combinations(flat: dict[str, Any]) -> None:
    if flat["data.test"] % 2 or flat["data.labeled"] % 2 or flat["data.val"] % 2:
        for key in ("data.test", "data.labeled", "data.val"):
            if flat[key] % 2:
                raise ParamError(f"{key}={flat[key]} must be even: splits are class-balanced")
    if flat["distill.feature_weight"] > 0 and not (
            flat["distill.teacher_mode"] == "online"
            or (flat["distill.teacher_mode"] == "cached" and flat["teacher_crops.features"])):
        raise ParamError(
            f"distill.feature_weight={flat['distill.feature_weight']} needs the teacher's feature map "
            "of the crop the student sees: distill.teacher_mode=online, or cached with "
            "teacher_crops.features true (the whole image's map, stored once, cut to the crop)"
        )
    if flat["distill.attention_weight"] > 0 and not (
            flat["distill.teacher_mode"] == "online" or flat["teacher_crops.attention"]):
        raise ParamError(
            f"distill.attention_weight={flat['distill.attention_weight']} needs the teacher's maps of "
            "the crop the student sees: distill.teacher_mode=online, or teacher_crops.attention true "
            "(maps stored with each crop in crops mode, of each whole image in cached mode)"
        )
    if flat["distill.teacher_mode"] == "crops" and flat["teacher_crops.crops"] == 0:
        raise ParamError("distill.teacher_mode=crops needs teacher_crops.crops > 0 (the stored crops "
                         "of each image the student trains on)")
    if flat["data.size"] > flat["data.max_size"]:
        raise ParamError(
            f"data.size={flat['data.size']} exceeds data.max_size={flat['data.max_size']} (the largest "
            "pool, whose teacher logits are cached once): raise data.max_size"
        )
    for group in ("pretrain", "pretrain_imagenet"):
        if flat[f"{group}.warmup_epochs"] >= flat[f"{group}.epochs"]:
            raise ParamError(
                f"{group}.warmup_epochs={flat[f'{group}.warmup_epochs']} must be below "
                f"{group}.epochs={flat[f'{group}.epochs']}"
            )


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml, validate every key and return the nested dict."""
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"{path} not found: run from the repository root")
    try:
        tree = read_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ParamError(f"{path} is not valid YAML: {err}".splitlines()[0]) from err
    validate(tree)
    return tree


def load_or_exit(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """load_params for stage entry points: a bad value ends the process with one line."""
    try:
        return load_params(path)
    except ParamError as err:
        sys.exit(f"error: {err}")

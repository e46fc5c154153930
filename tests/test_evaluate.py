"""The evaluate stage on a tiny real-photo test split and a small student model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from catdog.augment import eval_view
from catdog.cache import Split, save_split, split_path
from catdog.metrics import classification_metrics
from catdog.models import MEAN, STD, encoder, save_model, student
from catdog.predict import dog_probabilities
from catdog.stages import evaluate

TRAIN_INFO = {"epochs": 3, "epochs_run": 5, "train_seconds": 1.5}
RATES = ("accuracy", "precision_cat", "recall_cat", "precision_dog", "recall_dog", "roc_auc")


def fitted_student(split: Split, image_size: int) -> nn.Module:
    """A student that gives varied predictions: a random-init MobileNetV2 in eval mode outputs
    one constant (its BN running statistics do not match its activations), so the BN statistics
    are measured on `split` and the head is fit to 4 cats + 4 dogs of it (about a second)."""
    torch.manual_seed(0)
    net = student()
    x = eval_view(split.images, image_size)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass gives the exact batch statistics
    with torch.no_grad():
        net.train()(x)
        fit = torch.tensor([0, 1, 2, 3, 8, 9, 10, 11])
        features = encoder(net.eval())(x[fit])
    head = net.classifier[-1]
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    for _ in range(100):
        loss = F.cross_entropy(head(features), split.labels[fit])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo_root: Path, tiny_split) -> Path:
    """A run folder: params.yaml (batch 5, cpu), the test split, models/m.pt + models/m.json."""
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["evaluate"]["batch_size"] = 5  # 16 images: 3 full batches and a partial one
    params["compute"]["device"] = "cpu"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    save_split(split_path("test"), tiny_split)
    net = fitted_student(tiny_split, 48)  # 64 px cache -> 48 px input
    save_model("models/m.pt", net, method="m", image_size=48)
    (tmp_path / "models" / "m.json").write_text(json.dumps(TRAIN_INFO))
    return tmp_path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_writes_metrics_confusion_and_roc(workdir: Path, tiny_split) -> None:
    evaluate.main(["m"])
    metrics = json.loads((workdir / "metrics" / "m.json").read_text())
    metric_keys = set(classification_metrics(np.array([0, 1]), np.array([0.2, 0.7])))
    assert set(metrics) == metric_keys | set(TRAIN_INFO) | {"ece", "corruption_accuracy"}
    for key in RATES:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["n"] == len(tiny_split)
    assert {k: metrics[k] for k in TRAIN_INFO} == TRAIN_INFO

    rows = read_csv(workdir / "plots" / "m" / "confusion.csv")
    assert [r["actual"] for r in rows] == ["Cat"] * 8 + ["Dog"] * 8  # split order kept
    assert {r["predicted"] for r in rows} == {"Cat", "Dog"}  # the fitted model says both
    hand_accuracy = sum(r["actual"] == r["predicted"] for r in rows) / len(rows)
    assert metrics["accuracy"] == pytest.approx(hand_accuracy)
    dog_rows = [r for r in rows if r["actual"] == "Dog"]
    assert metrics["recall_dog"] == pytest.approx(
        sum(r["predicted"] == "Dog" for r in dog_rows) / len(dog_rows))

    roc_rows = read_csv(workdir / "plots" / "m" / "roc.csv")
    roc = [(float(r["fpr"]), float(r["tpr"])) for r in roc_rows]
    assert roc[0] == (0.0, 0.0) and roc[-1] == (1.0, 1.0)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(roc, roc[1:], strict=False))
    assert not list(workdir.rglob("*.tmp"))  # atomic writes left nothing behind

    bins = read_csv(workdir / "plots" / "m" / "reliability.csv")
    assert sum(int(b["count"]) for b in bins) == len(tiny_split)
    ece = sum(int(b["count"]) / len(tiny_split) * abs(float(b["accuracy"]) - float(b["confidence"]))
              for b in bins)
    assert metrics["ece"] == pytest.approx(ece, abs=1e-5)
    table = read_csv(workdir / "plots" / "m" / "corruptions.csv")
    assert [int(r["severity"]) for r in table] == [0, 1, 2, 3, 4, 5]
    assert float(table[0]["mean"]) == pytest.approx(metrics["accuracy"])  # severity 0: clean
    assert metrics["corruption_accuracy"] == pytest.approx(np.mean([float(r["mean"]) for r in table[1:]]))


def test_corruption_scoring_can_be_switched_off(workdir: Path) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["evaluate"]["corruption_images"] = 0
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    evaluate.main(["m"])
    assert "corruption_accuracy" not in json.loads((workdir / "metrics" / "m.json").read_text())
    assert read_csv(workdir / "plots" / "m" / "corruptions.csv") == []  # the header alone


def test_inference_is_resize_and_imagenet_normalisation(tiny_split) -> None:
    """At the cache's own size the input is just the normalised image: compare by hand."""
    net = fitted_student(tiny_split, 64)
    probs = dog_probabilities(net, tiny_split.images, 64, torch.device("cpu"), batch_size=7)
    x = tiny_split.images.float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        by_hand = net(x).softmax(dim=1)[:, 1].double().numpy()
    assert probs.shape == (16,) and probs.std() > 0.01
    np.testing.assert_allclose(probs, by_hand, atol=1e-4)


def test_without_training_info_writes_metrics_only(workdir: Path) -> None:
    (workdir / "models" / "m.json").unlink()
    evaluate.main(["m"])
    metrics = json.loads((workdir / "metrics" / "m.json").read_text())
    assert "accuracy" in metrics and "epochs" not in metrics


def test_missing_model_is_one_line_error(workdir: Path) -> None:
    with pytest.raises(SystemExit, match=r"models/nope\.pt not found"):
        evaluate.main(["nope"])
    assert not (workdir / "metrics").exists()


def test_method_must_be_a_plain_name(workdir: Path) -> None:
    with pytest.raises(SystemExit) as err:
        evaluate.main(["../m"])
    assert err.value.code == 2

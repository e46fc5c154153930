"""The ImageNet teacher on real photos: class mapping, input handling, file format, the stage."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import make_split
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from catdog.cache import Split, save_split, split_path
from catdog.logistic_head import C_GRID
from catdog.teachers import (
    RESNET50_FILE,
    TEACHER_FILE,
    Teacher,
    backbone,
    batched,
    load_teacher,
    save_teacher,
    to_device,
)

SIZE = 160  # teacher input side in these tests: small enough for a fast CPU run


@pytest.fixture(scope="module")
def teacher() -> Teacher:
    return to_device(Teacher("efficientnet_lite2", SIZE), "cpu")


@pytest.fixture(scope="module")
def photos(shared_zip: Path) -> tuple[Split, Split]:
    """Real photos at 128 px: 10 cats + 10 dogs to fit a head, 10 + 10 other ones to check it."""
    return (make_split(shared_zip, 10, size=128, offset=200),
            make_split(shared_zip, 10, size=128, offset=300))


def accuracy(prob_dog: torch.Tensor, labels: torch.Tensor) -> float:
    return float(((prob_dog >= 0.5).long() == labels).float().mean())


def test_zero_shot_maps_cats_to_cat_and_dogs_to_dog(teacher: Teacher, photos) -> None:
    _, check = photos
    prob = batched(teacher.zero_shot, check.images, 16)
    assert prob.shape == (len(check),) and ((prob >= 0) & (prob <= 1)).all()
    # Label 0 = Cat, 1 = Dog: a swapped class range would score near 0.
    assert accuracy(prob, check.labels) >= 0.8
    assert prob[check.labels == 1].median() > 0.9 and prob[check.labels == 0].median() < 0.1


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "mobilenet_v2"])
def test_the_other_offline_teachers_know_cats_from_dogs(arch: str, photos) -> None:
    # the teacher-student pairs: EfficientNet-Lite0 (pip weights) and ImageNet MobileNetV2 ($TORCH_HOME)
    other = to_device(Teacher(arch, SIZE), "cpu")
    _, check = photos
    assert accuracy(batched(other.zero_shot, check.images, 16), check.labels) >= 0.8
    assert other.dim == 1280 and len(other.blocks()) >= 16  # taps for attention transfer


def test_fitted_head_matches_logistic_regression_and_classifies(teacher: Teacher, photos) -> None:
    fit, check = photos
    fit_x = batched(teacher.embed, fit.images, 16).numpy()
    scaler = StandardScaler().fit(fit_x)
    lr = LogisticRegression(C=0.1, max_iter=5000).fit(scaler.transform(fit_x), fit.labels.numpy())
    teacher.set_head_from_logistic(scaler, lr)
    logits = batched(teacher, check.images, 16)
    assert logits.shape == (len(check), 2)
    prob_dog = logits.softmax(dim=1)[:, 1]
    check_x = batched(teacher.embed, check.images, 16).numpy()
    expected = lr.predict_proba(scaler.transform(check_x))[:, 1]  # classes_ = [0 (Cat), 1 (Dog)]
    np.testing.assert_allclose(prob_dog.numpy(), expected, atol=1e-4)
    assert accuracy(prob_dog, check.labels) >= 0.85


def test_forward_takes_uint8_of_any_side(teacher: Teacher, tiny_split: Split) -> None:
    images = tiny_split.images[:3]  # 64 px
    with torch.inference_mode():
        small = teacher(images)
        big = teacher(torch.nn.functional.interpolate(images.float(), size=300).to(torch.uint8))
        same = teacher(torch.nn.functional.interpolate(images.float(), size=SIZE).to(torch.uint8))
    for out in (small, big, same):
        assert out.shape == (3, 2) and out.dtype == torch.float32 and torch.isfinite(out).all()
    teacher.train()
    assert not teacher.training and not teacher.trunk.training  # frozen: stays in eval mode


def test_save_load_roundtrip_gives_identical_logits(teacher: Teacher, tiny_split: Split,
                                                    tmp_path: Path) -> None:
    with torch.no_grad():
        teacher.head.weight.copy_(torch.randn_like(teacher.head.weight) * 0.01)
        teacher.head.bias.copy_(torch.tensor([0.3, -0.3]))
    save_teacher(tmp_path / "teacher.pt", teacher)
    blob = torch.load(tmp_path / "teacher.pt", weights_only=True)
    assert blob["arch"] == "efficientnet_lite2" and blob["image_size"] == SIZE
    assert not any(torch.is_tensor(v) and v.numel() > 2 * teacher.dim for v in blob.values())
    again = load_teacher(tmp_path / "teacher.pt", "cpu")
    with torch.inference_mode():
        assert torch.equal(teacher(tiny_split.images), again(tiny_split.images))


def test_load_teacher_rejects_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not found"):
        load_teacher(tmp_path / "nope.pt")


def test_resnet50_missing_weights_says_what_to_do(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(SystemExit) as err:
        backbone("resnet50")
    message = str(err.value)
    assert "\n" not in message and message.startswith("error:")
    assert RESNET50_FILE in message and "TORCH_HOME" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "teacher.arch=efficientnet_lite2" in message


def test_resnet50_feature_pipeline_shapes(tiny_split: Split) -> None:
    trunk, classifier, mean, std = backbone("resnet50", pretrained=False)
    assert len(mean) == len(std) == 3
    with torch.inference_mode():
        fmap = trunk.eval()(torch.randn(2, 3, 64, 64))
        assert fmap.shape == (2, 2048, 2, 2)
        assert classifier(fmap.mean(dim=(2, 3))).shape == (2, 1000)
    net = Teacher("resnet50", 64, pretrained=False)
    with torch.inference_mode():
        assert net(tiny_split.images[:2]).shape == (2, 2)
        assert net.zero_shot(tiny_split.images[:2]).shape == (2,)


def test_stages_fit_then_score_end_to_end(shared_zip: Path, repo_root: Path, tmp_path: Path,
                                          monkeypatch) -> None:
    from catdog.stages import teacher as stage
    from catdog.stages import teacher_score

    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["teacher"].update(image_size=SIZE, batch_size=16)
    params["compute"].update(device="cpu")
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(params))
    for name, per_class, offset in (("labeled", 16, 400), ("val", 5, 500)):
        save_split(split_path(name), make_split(shared_zip, per_class, size=128, offset=offset))
    stage.main()  # fits without a test split on disk: it never reads one
    fitted = json.loads(Path("models/teacher.json").read_text())
    assert fitted["C"] in C_GRID and 0.0 <= fitted["val_accuracy"] <= 1.0
    assert not Path(teacher_score.METRICS_FILE).exists()
    save_split(split_path("test"), make_split(shared_zip, 10, size=128, offset=600))
    teacher_score.main()
    metrics = json.loads(Path(teacher_score.METRICS_FILE).read_text())
    for key in ("accuracy", "n", "roc_auc", "precision_cat", "recall_dog", "zero_shot_accuracy",
                "val_accuracy"):
        assert isinstance(metrics[key], int | float), key
    assert metrics["n"] == 20 and "C" not in metrics  # the fit's own values stay in models/teacher.json
    assert metrics["val_accuracy"] == fitted["val_accuracy"]
    assert metrics["accuracy"] > 0.8 and metrics["zero_shot_accuracy"] > 0.7
    # calibration and robustness, as the students get them (catdog.robustness)
    assert 0.0 <= metrics["ece"] <= 0.5 and 0.0 <= metrics["corruption_accuracy"] <= metrics["accuracy"] + 0.1
    severities = (teacher_score.PLOTS_DIR / "corruptions.csv").read_text().splitlines()
    assert severities[0].startswith("severity,gaussian_noise") and len(severities) == 7  # clean + 1-5
    assert float(severities[1].split(",")[-1]) == pytest.approx(metrics["accuracy"])  # severity 0
    assert (teacher_score.PLOTS_DIR / "reliability.csv").read_text().startswith("confidence,accuracy")
    rows = Path(teacher_score.CONFUSION_FILE).read_text().splitlines()
    assert rows[0] == "actual,predicted" and len(rows) == 21
    assert {r.split(",")[0] for r in rows[1:]} == {"Cat", "Dog"}
    saved = load_teacher(TEACHER_FILE)
    assert saved.arch == "efficientnet_lite2" and saved.image_size == SIZE


def test_fit_head_breaks_val_ties_by_log_loss() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    from catdog.logistic_head import fit_head

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    x = rng.normal(size=(40, 8)) + 4.0 * y[:, None]  # separable: every C scores 1.0 on val
    val_x = x + rng.normal(scale=0.1, size=x.shape)
    scaler, lr, c, val_acc = fit_head(x, y, val_x, y, seed=0)
    assert val_acc == 1.0 and lr.C == c
    losses = {}
    for cand in C_GRID:
        fit = LogisticRegression(C=cand, max_iter=5000).fit(scaler.transform(x), y)
        losses[cand] = log_loss(y, fit.predict_proba(scaler.transform(val_x)))
    assert c == min(losses, key=losses.get)
    assert c != min(C_GRID)  # the most regularised head is the least confident: not chosen

"""pretrain, finetune and distill (both teacher modes) on a few dozen real photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import committed_params, save_training_splits

from catdog.cache import load_split
from catdog.models import load_model
from catdog.teachers import LOGITS_FILE, Teacher, load_teacher, save_logits, save_teacher

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_zip: Path) -> Path:
    params = committed_params()
    params["compute"].update({"device": "cpu", "precision": "fp32"})  # no timing probe: same run twice
    params["pretrain"].update({"epochs": 2, "warmup_epochs": 1, "batch_size": 16, "image_size": 32})
    params["finetune"].update({"epochs": 2, "batch_size": 16, "image_size": 32})
    params["distill"].update({"epochs": 2, "batch_size": 16, "image_size": 32})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    save_training_splits(shared_zip)
    return tmp_path


def save_teacher_and_logits() -> None:
    """A 64 px EfficientNet-Lite2 teacher and its cached logits of the labeled and pool images,
    as the teacher and teacher_logits stages leave them."""
    teacher = Teacher("efficientnet_lite2", 64)
    save_teacher("models/teacher.pt", teacher)
    pool, labeled = load_split("pool"), load_split("labeled")
    save_logits(LOGITS_FILE, labeled.files + pool.files, teacher(torch.cat([labeled.images, pool.images])),
                "fp32")


def _set(path: Path, group: str, **values: object) -> None:
    params = yaml.safe_load(path.read_text())
    params[group].update(values)
    path.write_text(yaml.safe_dump(params))


def test_pretrain_then_finetune_starts_from_the_simclr_encoder(workspace: Path) -> None:
    from catdog.stages import finetune, pretrain

    pretrain.main([])
    encoder, meta = load_model("models/pretrain.pt")
    assert meta["method"] == "simclr-pretrain"
    rows = (workspace / "dvclive/pretrain/plots/metrics/val/knn_acc.tsv").read_text().splitlines()
    assert len(rows) == 3 and all(0 <= float(r.split()[1]) <= 1 for r in rows[1:])
    # probe_every 5 > 2 epochs: the representation is scored after the last epoch only
    probe = (workspace / "dvclive/pretrain/plots/metrics/heldout/probe_agree.tsv").read_text().splitlines()
    assert [r.split()[0] for r in probe[1:]] == ["1"]  # dvclive's step 1 is the second epoch
    score = json.loads((workspace / "metrics/representation/simclr.json").read_text())
    assert set(score) == {"probe_val", "probe_agree", "knn_val", "epochs"} and score["epochs"] == 2
    assert all(0 <= score[k] <= 1 for k in ("probe_val", "probe_agree", "knn_val"))
    assert score["probe_agree"] == float(probe[-1].split()[-1])
    start = finetune.initial_model("simclr")
    for key, value in encoder.features.state_dict().items():
        assert torch.equal(start.features.state_dict()[key], value), key
    finetune.main(["simclr"])
    info = json.loads((workspace / "models/simclr.json").read_text())
    assert 1 <= info["epochs"] <= info["epochs_run"] == 2 and info["train_seconds"] > 0
    assert 0.0 <= info["heldout_agree"] <= 1.0  # agreement on the heldout file's 12 images
    tuned, meta = load_model("models/simclr.pt")
    assert meta["image_size"] == 32
    assert not torch.equal(tuned.features[0][0].weight, encoder.features[0][0].weight)


def test_simclr_imagenet_starts_from_imagenet_and_fine_tunes(workspace: Path) -> None:
    from catdog.models import imagenet_student
    from catdog.stages import finetune, pretrain_imagenet

    _set(workspace / "params.yaml", "pretrain_imagenet", epochs=1, warmup_epochs=0)
    before = imagenet_student().features.state_dict()
    pretrain_imagenet.main([])
    encoder, meta = load_model("models/pretrain_imagenet.pt")
    assert meta["method"] == "simclr_imagenet-pretrain"
    after = encoder.features.state_dict()
    first = "0.0.weight"
    assert not torch.equal(before[first], after[first])  # trained...
    # ...from ImageNet's weights: after one epoch at a small LR they still point the same way
    assert torch.nn.functional.cosine_similarity(before[first].flatten(), after[first].flatten(), dim=0) > 0.9
    assert (workspace / "metrics/representation/simclr_imagenet.json").is_file()
    assert not (workspace / "models/pretrain.pt").exists()  # its own files, beside SimCLR's
    finetune.main(["simclr_imagenet"])
    assert load_model("models/simclr_imagenet.pt")[1]["method"] == "simclr_imagenet"


@pytest.mark.parametrize("mode", ["cached", "online"])
def test_distill_asks_the_teacher_as_configured(workspace: Path, mode: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from catdog.stages import distill

    save_teacher_and_logits()
    _set(workspace / "params.yaml", "distill", teacher_mode=mode)
    calls = {"whole": 0, "crops": 0}
    whole, crops = Teacher.forward, Teacher.forward01_with_map

    def count_whole(self: Teacher, images: torch.Tensor) -> torch.Tensor:
        calls["whole"] += 1
        return whole(self, images)

    def count_crops(self: Teacher, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls["crops"] += 1
        assert x.shape[-1] == 64 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        return crops(self, x)

    monkeypatch.setattr(Teacher, "forward", count_whole)
    monkeypatch.setattr(Teacher, "forward01_with_map", count_crops)
    loads = []
    monkeypatch.setattr(distill, "load_teacher", lambda *a: loads.append(a) or load_teacher(*a))
    distill.main(["scratch"])
    assert len(loads) == (mode == "online")  # cached mode never builds the teacher's backbone
    steps = 2 * (48 // 16)  # epochs x batches of pool (32) + labeled (16)
    if mode == "online":
        assert calls == {"whole": 0, "crops": steps}
    else:  # the cached logits of the teacher_logits stage: the teacher is not asked again
        assert calls == {"whole": 0, "crops": 0}
    net, meta = load_model("models/kd.pt")
    assert meta["method"] == "kd"
    info = json.loads((workspace / "models/kd.json").read_text())
    assert info["epochs_run"] == 2 and 0.0 <= info["heldout_agree"] <= 1.0


def test_feature_distillation_trains_an_adapter_on_teacher_maps(workspace: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from catdog.stages import distill

    save_teacher("models/teacher.pt", Teacher("efficientnet_lite2", 64))
    _set(workspace / "params.yaml", "distill", teacher_mode="online", feature_weight=1.0)
    maps = []
    original = Teacher.forward01_with_map

    def record(self: Teacher, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, fmap = original(self, x)
        maps.append(fmap.shape)
        return logits, fmap

    monkeypatch.setattr(Teacher, "forward01_with_map", record)
    distill.main(["scratch"])
    assert len(maps) == 2 * (48 // 16) and maps[0][1] == 1280  # EfficientNet-Lite2 width
    checkpoint = torch.load(workspace / "checkpoints/distill-kd.pt", weights_only=False)
    assert checkpoint["model"]["adapter.weight"].shape == (1280, 1280, 1, 1)
    _, meta = load_model("models/kd.pt")  # the model file holds the student alone
    assert meta["method"] == "kd"


def test_bn_calibration_changes_the_statistics_and_never_the_training(workspace: Path) -> None:
    from catdog.stages import distill

    save_teacher_and_logits()
    _set(workspace / "params.yaml", "distill", eval_size=48, epochs=1)
    runs = {}
    for n in (0, 16):
        _set(workspace / "params.yaml", "distill", bn_calibration=n)
        distill.main(["scratch"])  # other params: the last run's checkpoint is not resumed
        runs[n] = torch.load(workspace / "checkpoints/distill-kd.pt", weights_only=False)
    plain, calibrated = (runs[n]["model"] for n in (0, 16))
    assert plain.keys() == calibrated.keys()
    stats = [k for k in plain if k.endswith(("running_mean", "running_var"))]
    # the same training, step for step: weights and training loss alike
    assert all(torch.equal(plain[k], calibrated[k]) for k in plain
               if k not in stats and not k.endswith("num_batches_tracked"))
    assert ([row["train/loss"] for row in runs[0]["state"].history]
            == [row["train/loss"] for row in runs[16]["state"].history])
    # only the BN statistics differ: re-estimated on whole images at 48 px, not the 32 px crops
    assert all(not torch.equal(plain[k], calibrated[k]) for k in stats)

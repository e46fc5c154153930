"""Student model files and the ImageNet student's weights: clear errors, no silent fallbacks."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

from catdog.models import imagenet_student, load_model, save_model, stem_stride, student

SHARED_TORCH = Path(__file__).resolve().parents[2] / "shared" / "torch"


def test_imagenet_student_loads_the_official_weights_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(SHARED_TORCH))
    net = imagenet_student()
    reference = torch.load(SHARED_TORCH / "hub/checkpoints/mobilenet_v2-b0353104.pth",
                           weights_only=True)
    assert torch.equal(net.features[0][0].weight, reference["features.0.0.weight"])
    assert net.classifier[-1].out_features == 2


def test_missing_imagenet_weights_name_the_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(SystemExit) as err:
        imagenet_student()
    message = str(err.value)
    assert message.startswith("error: cannot load MobileNetV2 ImageNet weights")
    assert "mobilenet_v2-b0353104.pth" in message and "TORCH_HOME" in message


def test_model_file_roundtrip_and_foreign_files(tmp_path: Path) -> None:
    net = student().eval()
    save_model(tmp_path / "m.pt", net, method="kd", image_size=96)
    loaded, meta = load_model(tmp_path / "m.pt")
    assert meta == {"arch": "mobilenet_v2", "method": "kd", "image_size": 96,
                    "classes": ["Cat", "Dog"], "stem_stride": 2}
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(loaded(x), net(x))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(SystemExit, match="is not a catdog model file"):
        load_model(tmp_path / "junk.pt")
    torch.save({"arch": "resnet18", "state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(SystemExit, match="holds a 'resnet18' model"):
        load_model(tmp_path / "other.pt")


def test_low_resolution_student_keeps_its_stem_stride_through_the_model_file(tmp_path: Path) -> None:
    net = student(stem_stride=1).eval()
    x = torch.randn(2, 3, 64, 64)
    assert net.features(x).shape[-1] == 4 and student().features(x).shape[-1] == 2  # 4x4 vs 2x2
    save_model(tmp_path / "low.pt", net, method="simclr", image_size=64)
    loaded, meta = load_model(tmp_path / "low.pt")
    assert meta["stem_stride"] == 1 and stem_stride(loaded) == 1
    assert torch.equal(loaded(x), net(x))
    blob = torch.load(tmp_path / "low.pt", weights_only=True)
    del blob["stem_stride"]  # a file written before the key existed: torchvision's stride 2
    torch.save(blob, tmp_path / "old.pt")
    assert stem_stride(load_model(tmp_path / "old.pt")[0]) == 2

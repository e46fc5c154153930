"""Feature-map hooks and the featuremaps stage's PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from catdog.cache import save_split, split_path
from catdog.models import save_model, student
from catdog.stages import featuremaps
from catdog.stages.featuremaps import LAYERS, feature_maps, scale_channels

# Output channels and stride of each hooked MobileNetV2 module (input 64 px).
EXPECTED = {"features.0.2": (32, 32), "features.6.conv.2": (32, 8),
            "features.13.conv.3": (96, 4), "features.18.2": (1280, 2)}


def test_hooks_capture_each_layer_and_are_removed() -> None:
    torch.manual_seed(0)
    net = student().eval()
    maps = feature_maps(net, torch.randn(3, 64, 64))
    assert list(maps) == list(LAYERS)
    for name, (channels, side) in EXPECTED.items():
        assert maps[name].shape == (channels, side, side), name
        assert maps[name].std() > 0, name
    assert all(not m._forward_hooks for m in net.modules())
    # the network's own output is unchanged by the hooks having been there
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
    feature_maps(net, x)
    with torch.no_grad():
        assert torch.equal(net(x), before)


def test_unknown_layer_is_rejected() -> None:
    with pytest.raises(ValueError, match="features.99"):
        feature_maps(student(), torch.zeros(3, 32, 32), layers=("features.99",))


def test_scale_channels_each_to_unit_range() -> None:
    maps = torch.stack([torch.arange(4.0).view(2, 2) * 3 - 5, torch.full((2, 2), 7.0)])
    scaled = scale_channels(maps)
    assert scaled[0].min() == 0 and scaled[0].max() == 1
    assert torch.equal(scaled[1], torch.zeros(2, 2))


def test_stage_writes_a_grid_per_image_and_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo_root: Path, tiny_split
) -> None:
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    # test split in another order: cats and dogs interleaved, so "first of each class" matters
    order = torch.tensor([8, 0, 9, 1, 10, 2])
    split = type(tiny_split)(tiny_split.images[order], tiny_split.labels[order],
                             [tiny_split.files[i] for i in order])
    save_split(split_path("test"), split)
    torch.manual_seed(0)
    save_model("models/m.pt", student(), method="m", image_size=56)

    featuremaps.main(["m"])
    out = tmp_path / "plots" / "m" / "featuremaps"
    expected = {f"{k}_input.png" for k in ("cat", "dog")}
    expected |= {f"{k}_{layer}.png" for k in ("cat", "dog") for layer in LAYERS}
    assert {p.name for p in out.iterdir()} == expected  # and no leftover .tmp files
    for name in expected - {"cat_input.png", "dog_input.png"}:
        with Image.open(out / name) as im:
            assert im.format == "PNG"
            pixels = np.asarray(im.convert("RGB"))
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 10, name  # a real picture, not a blank canvas
    # the inputs are the first cat (split index 1) and the first dog (index 0), pixel for pixel
    for name, index in (("cat_input.png", 1), ("dog_input.png", 0)):
        with Image.open(out / name) as im:
            assert np.array_equal(np.asarray(im), split.images[index].permute(1, 2, 0).numpy())

"""The student network (MobileNetV2) and the model-file format shared by all stages.

A model file (models/<method>.pt) is a dict:
  arch: "mobilenet_v2"; method: str; image_size: int (side the model was trained at);
  classes: ["Cat", "Dog"]; state_dict: weights of torchvision's mobilenet_v2(num_classes=2);
  stem_stride: the first convolution's stride (2 as torchvision; absent in older files: 2).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from torch import nn
from torchvision.models import mobilenet_v2

from catdog import CLASSES
from catdog.atomic import load_torch_file, save_torch

STUDENT_ARCH = "mobilenet_v2"
FEATURE_DIM = 1280  # MobileNetV2 pooled feature width
# ImageNet statistics: the student always sees inputs normalised with these.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def student(num_classes: int = len(CLASSES), stem_stride: int = 2) -> nn.Module:
    """MobileNetV2 from random init with a `num_classes` head (stem_stride: see set_stem_stride)."""
    return set_stem_stride(mobilenet_v2(weights=None, num_classes=num_classes), stem_stride)


def set_stem_stride(net: nn.Module, stride: int) -> nn.Module:
    """Set the stride of a MobileNetV2's first convolution: 2 as torchvision (a 64 px input ends
    in a 2x2 map), 1 for low-resolution inputs as CIFAR variants do (a 4x4 map, 4x the compute).
    The weights are the same either way, so an ImageNet start keeps them."""
    net.features[0][0].stride = (stride, stride)
    return net


def stem_stride(net: nn.Module) -> int:
    return int(net.features[0][0].stride[0])


def encoder(net: nn.Module) -> nn.Module:
    """The pooled 1280-d feature extractor of a MobileNetV2 (shares weights with `net`)."""
    return nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def save_model(path: str | Path, net: nn.Module, method: str, image_size: int) -> None:
    """Write a model file atomically."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    save_torch(
        path,
        {"arch": STUDENT_ARCH, "method": method, "image_size": image_size,
         "classes": list(CLASSES), "stem_stride": stem_stride(net), "state_dict": state},
    )


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Load a model file; fail with one line if it is missing or of another architecture."""
    blob = load_torch_file(path, "model")
    if not isinstance(blob, dict) or blob.get("arch") != STUDENT_ARCH or "state_dict" not in blob:
        arch = blob.get("arch") if isinstance(blob, dict) else type(blob).__name__
        raise SystemExit(f"error: {path} holds a {arch!r} model, expected a catdog {STUDENT_ARCH} model file")
    net = student(len(blob.get("classes", CLASSES)), int(blob.get("stem_stride", 2)))
    try:
        net.load_state_dict(blob["state_dict"])
    except RuntimeError as err:
        raise SystemExit(f"error: {path} does not match the {STUDENT_ARCH} layout: "
                         f"{str(err).splitlines()[0]}") from err
    net.eval()
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return net, meta


def imagenet_mobilenet_v2() -> nn.Module:
    """torchvision's ImageNet MobileNetV2 (IMAGENET1K_V1), its 1000-class head included.

    The weights load from $TORCH_HOME/hub/checkpoints when present, else are downloaded.
    """
    from torchvision.models import MobileNet_V2_Weights

    weights = MobileNet_V2_Weights.IMAGENET1K_V1
    try:
        return mobilenet_v2(weights=weights)
    except Exception as err:  # noqa: BLE001 - offline download failures come in many types
        raise SystemExit(
            f"error: cannot load MobileNetV2 ImageNet weights ({type(err).__name__}); put "
            f"{Path(weights.url).name} in $TORCH_HOME/hub/checkpoints (e.g. TORCH_HOME=../shared/torch)"
        ) from None


def imagenet_student(num_classes: int = len(CLASSES), stem_stride: int = 2) -> nn.Module:
    """MobileNetV2 with torchvision's ImageNet weights (IMAGENET1K_V1) and a fresh head."""
    net = imagenet_mobilenet_v2()
    net.classifier[-1] = nn.Linear(FEATURE_DIM, num_classes)
    return set_stem_stride(net, stem_stride)


def method_from_argv(argv: list[str] | None, description: str) -> str:
    """The `method` argument of the per-model stages: a plain name, read as models/<method>.pt."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("method", help="model name: reads models/<method>.pt (e.g. simclr, kd)")
    method = parser.parse_args(argv).method
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", method):
        parser.error(f"method {method!r} must be a plain name (letters, digits, _ . -)")
    return method

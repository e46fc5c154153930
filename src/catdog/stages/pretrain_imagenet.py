"""Stage `pretrain_imagenet`: SimCLR on the unlabeled pool, continued from ImageNet's encoder.

The practical recipe when a pretrained backbone exists: torchvision's ImageNet MobileNetV2 adapts
to the pool by self-supervision before the fine-tune. `pretrain`'s recipe (augmentation, batch,
loss, head, monitor) with `pretrain_imagenet`'s own epochs and learning-rate schedule, so that
changing SimCLR-from-scratch's schedule leaves this stage up to date. Writes
models/pretrain_imagenet.pt, models/pretrain_imagenet.json and
metrics/representation/simclr_imagenet.json.
"""

from __future__ import annotations

from catdog.device import pick_device
from catdog.models import imagenet_student
from catdog.params import load_or_exit
from catdog.simclr import pretrain
from catdog.stage_time import StageClock
from catdog.train_loop import choose_precision, seed_everything

# The keys of `pretrain` this stage shares; its schedule (epochs, lr, warmup_epochs) is its own.
SHARED = ("batch_size", "weight_decay", "temperature", "image_size", "proj_dim", "knn_k", "jitter",
          "min_scale", "probe_every")


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("pretrain_imagenet")
    params = load_or_exit()
    recipe, compute, seed = params["pretrain"], params["compute"], params["train"]["seed"]
    cfg = {key: recipe[key] for key in SHARED} | dict(params["pretrain_imagenet"])
    device = pick_device(compute["device"], compute["threads"])
    choose_precision(compute, device, cfg["image_size"], cfg["batch_size"])
    generator = seed_everything(seed, device)
    net = imagenet_student(stem_stride=params["student"]["stem_stride"])
    result = pretrain(net, cfg, device, seed, generator, method="simclr_imagenet",
                      stem="pretrain_imagenet", checkpoint_every=compute["checkpoint_every"])
    clock.save(carried=result.resumed_seconds)


if __name__ == "__main__":
    main()

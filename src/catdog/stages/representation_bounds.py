"""Stage `representation_bounds`: the floor and the ceiling of the representation score.

Scores two encoders that no pretraining touched, the same way the pretrain stage scores its own
(catdog.representation, whole images at pretrain.image_size): MobileNetV2 from random init
(seeded by train.seed: the floor a pretraining must rise above) and torchvision's ImageNet
MobileNetV2 (the ceiling of a supervised start). Neither depends on the pool, so DVC runs this
once for every pool size. Writes metrics/representation/bounds.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

from catdog import representation
from catdog.atomic import save_json
from catdog.cache import HELDOUT_FILE, load_split
from catdog.device import pick_device
from catdog.models import encoder, imagenet_student, student
from catdog.params import load_or_exit
from catdog.simclr import embed
from catdog.stage_time import StageClock
from catdog.train_loop import prepare_model, seed_everything

BOUNDS_FILE = Path("metrics/representation/bounds.json")


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("representation_bounds")
    params = load_or_exit()
    compute, cfg = params["compute"], params["pretrain"]
    device = pick_device(compute["device"], compute["threads"])
    labeled, val, held = load_split("labeled"), load_split("val"), load_split(HELDOUT_FILE)
    seed_everything(params["train"]["seed"], device)
    out = {}
    stride = params["student"]["stem_stride"]
    for name, build in (("random", student), ("imagenet", imagenet_student)):
        backbone = prepare_model(encoder(build(stem_stride=stride)), device).eval()
        feats = [embed(backbone, split.images, cfg["image_size"], device).cpu()
                 for split in (labeled, val, held)]
        out[name] = representation.score((feats[0], labeled.labels), (feats[1], val.labels),
                                         (feats[2], held.labels), cfg["knn_k"])
        print(f"representation of the {name} encoder: " +
              ", ".join(f"{k} {v:.3f}" for k, v in out[name].items()), file=sys.stderr)
    save_json(BOUNDS_FILE, out)
    clock.save()


if __name__ == "__main__":
    main()

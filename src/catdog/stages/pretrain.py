"""Stage `pretrain`: SimCLR on the unlabeled pool, MobileNetV2 from random init.

Reads the params group `pretrain` whole; the run itself is catdog.simclr.pretrain. Writes
models/pretrain.pt (the encoder), models/pretrain.json and metrics/representation/simclr.json
(its representation score).
"""

from __future__ import annotations

from catdog.models import student
from catdog.params import load_or_exit
from catdog.simclr import pretrain
from catdog.stage_time import StageClock
from catdog.train_loop import stage_setup


def main(argv: list[str] | None = None) -> None:
    clock = StageClock("pretrain")
    params = load_or_exit()
    cfg, device, seed, generator = stage_setup(params, "pretrain")
    net = student(stem_stride=params["student"]["stem_stride"])
    result = pretrain(net, cfg, device, seed, generator, method="simclr", stem="pretrain",
                      checkpoint_every=params["compute"]["checkpoint_every"])
    clock.save(carried=result.resumed_seconds)


if __name__ == "__main__":
    main()

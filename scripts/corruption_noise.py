"""How many test images the corruption score needs: the sampling noise of `corruption_accuracy`
(evaluate.corruption_images, the first N test images under 5 corruptions x 5 severities) at
fewer images, for a budget choice that costs no model choice (it reads no model's accuracy to
pick anything; only how much the score moves when images are drawn again).

For each model file it records, once, which of the first N test images it gets right under each
corruption and severity (the evaluate stage's own corruptions and inference), then, for each n in
--sizes: the score on the first n images (what evaluate.corruption_images=n reports), its
standard error by bootstrap over images (each image keeps its 25 corrupted copies together), and
for every pair of models the standard error of their paired difference on the same n images.

    python scripts/corruption_noise.py models/a.pt models/b.pt --test data/prepared/test.pt
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from catdog.cache import load_split
from catdog.corruptions import KINDS, SEVERITIES, corrupt
from catdog.models import load_model
from catdog.predict import dog_probabilities


def correct_under_corruption(model: Path, images: torch.Tensor, labels: np.ndarray, seed: int,
                             batch_size: int) -> np.ndarray:
    """Bool [n_images, kinds x severities]: the model right on each corrupted image."""
    net, meta = load_model(model)
    side = int(meta["image_size"])
    cells = []
    for kind, severity in itertools.product(KINDS, SEVERITIES):
        prob = dog_probabilities(net, corrupt(images, kind, severity, seed), side,
                                 torch.device("cpu"), batch_size=batch_size, bf16=False)
        cells.append((prob >= 0.5) == labels)
    return np.stack(cells, axis=1)


def bootstrap_se(per_image: np.ndarray, rounds: int, rng: np.random.Generator) -> float:
    """Standard error of the mean of `per_image` (one value per image), resampling images."""
    picks = rng.integers(0, len(per_image), size=(rounds, len(per_image)))
    return float(per_image[picks].mean(axis=1).std(ddof=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="catdog model files (models/<method>.pt)")
    parser.add_argument("--test", type=Path, default=Path("data/prepared/test.pt"))
    parser.add_argument("--images", type=int, default=1000, help="the largest n: the profile's value")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 250, 500, 1000])
    parser.add_argument("--seed", type=int, default=0, help="evaluate.corruption_seed")
    parser.add_argument("--rounds", type=int, default=2000, help="bootstrap rounds")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()

    test = load_split(args.test)
    images, labels = test.images[: args.images], test.labels[: args.images].numpy()
    per_image = {}
    for model in args.models:
        start = time.perf_counter()
        right = correct_under_corruption(model, images, labels, args.seed, args.batch_size)
        per_image[str(model)] = right.mean(axis=1)  # each image's accuracy over the 25 cells
        print(f"{model}: {right.shape[1]} cells x {len(images)} images in "
              f"{time.perf_counter() - start:.0f} s; corruption_accuracy {right.mean():.4f}")

    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        row: dict = {"n": n}
        for name, acc in per_image.items():
            row[name] = {"score": float(acc[:n].mean()), "se": bootstrap_se(acc[:n], args.rounds, rng)}
        for (a, acc_a), (b, acc_b) in itertools.combinations(per_image.items(), 2):
            diff = acc_a[:n] - acc_b[:n]
            row[f"{a} - {b}"] = {"diff": float(diff.mean()), "se": bootstrap_se(diff, args.rounds, rng)}
        rows.append(row)
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

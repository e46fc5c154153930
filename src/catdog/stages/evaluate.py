"""Stage evaluate: score models/<method>.pt on the held-out test split.

`python -m catdog.stages.evaluate <method>` writes
  metrics/<method>.json          test metrics (same keys for every method) + training info
                                 from models/<method>.json (epochs, epochs_run, train_seconds)
  plots/<method>/confusion.csv   actual,predicted per test image (DVC confusion template)
  plots/<method>/roc.csv         fpr,tpr points of the ROC curve (DVC simple/linear template)
  plots/<method>/reliability.csv the reliability diagram: confidence bins, their mean confidence
                                 and accuracy (catdog.calibration); metrics hold the ECE
  plots/<method>/corruptions.csv accuracy at each severity (0 = clean) of each common corruption
                                 (catdog.corruptions) and their mean, on the first
                                 evaluate.corruption_images test images (0: none)

Leakage guard: this stage (and the teacher stage, for the teacher) is the only reader of
the test split; no training stage may load it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_curve

from catdog.atomic import save_json, save_text
from catdog.cache import load_split
from catdog.device import pick_device
from catdog.metrics import classification_metrics, confusion_csv
from catdog.models import load_model, method_from_argv
from catdog.params import load_or_exit
from catdog.predict import dog_probabilities, inference_bf16
from catdog.robustness import csv_text, score_robustness
from catdog.stage_time import StageClock

MODELS_DIR = Path("models")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")


def training_info(method: str) -> dict:
    """The training stage's summary (models/<method>.json), or {} if it wrote none."""
    path = MODELS_DIR / f"{method}.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SystemExit(f"error: {path} is not valid JSON: {err}") from err
    if not isinstance(info, dict):
        raise SystemExit(f"error: {path} must hold a JSON object")
    return info


def main(argv: list[str] | None = None) -> None:
    method = method_from_argv(argv, __doc__.splitlines()[0])
    clock = StageClock(f"evaluate-{method}")
    params = load_or_exit()
    batch_size = params["evaluate"]["batch_size"]
    device = pick_device(params["compute"]["device"], params["compute"]["threads"])

    net, meta = load_model(MODELS_DIR / f"{method}.pt")
    info = training_info(method)
    test = load_split("test")
    labels = test.labels.numpy()
    bf16 = inference_bf16(params["compute"]["precision"], device)  # on CUDA; the CPU scores in fp32
    prob_dog = dog_probabilities(
        net, test.images, int(meta["image_size"]), device, batch_size=batch_size, progress=True, bf16=bf16
    )

    metrics = classification_metrics(labels, prob_dog)
    n_corrupt = min(params["evaluate"]["corruption_images"], len(test))

    def prob_dog_of(images: torch.Tensor) -> np.ndarray:
        return dog_probabilities(net, images, int(meta["image_size"]), device, batch_size=batch_size,
                                 bf16=bf16)

    plots = PLOTS_DIR / method
    metrics |= score_robustness(plots, labels, prob_dog, prob_dog_of, test.images, n_corrupt,
                                params["evaluate"]["corruption_seed"])
    clash = sorted(set(metrics) & set(info))
    if clash:
        raise SystemExit(f"error: models/{method}.json reuses metric keys {clash}")
    save_json(METRICS_DIR / f"{method}.json", {**metrics, **info})

    save_text(plots / "confusion.csv", confusion_csv(labels, prob_dog))
    fpr, tpr, _ = roc_curve(labels, prob_dog)
    roc = [[f"{a:.6f}", f"{b:.6f}"] for a, b in zip(fpr, tpr, strict=True)]
    save_text(plots / "roc.csv", csv_text(["fpr", "tpr"], roc))
    print(f"{method}: test accuracy {metrics['accuracy']:.4f}, "
          f"ROC AUC {metrics['roc_auc']:.4f} on {metrics['n']} images, ECE {metrics['ece']:.4f}"
          + (f", mean accuracy under corruption {metrics['corruption_accuracy']:.4f} "
             f"({n_corrupt} images)" if n_corrupt else ""))
    clock.save()


if __name__ == "__main__":
    main()

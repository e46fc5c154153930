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

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_curve

from catdog.atomic import save_json, save_text
from catdog.cache import load_split
from catdog.calibration import expected_calibration_error, reliability
from catdog.corruptions import KINDS, SEVERITIES, corrupt
from catdog.device import pick_device
from catdog.metrics import classification_metrics, confusion_csv
from catdog.models import load_model, method_from_argv
from catdog.params import load_or_exit
from catdog.predict import dog_probabilities
from catdog.stage_time import StageClock

MODELS_DIR = Path("models")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")


def csv_text(header: list[str], rows: list[list]) -> str:
    """Rows as CSV text under a header line."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


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


def corruption_table(accuracy_of, images: torch.Tensor, labels: np.ndarray, seed: int
                     ) -> list[list[float]]:
    """Rows [severity, accuracy per kind..., mean over kinds], severity 0 being the clean images;
    `accuracy_of(images, labels)` scores one batch of uint8 images."""
    clean = accuracy_of(images, labels)
    rows = [[0, *([clean] * len(KINDS)), clean]]
    for severity in SEVERITIES:
        accs = [accuracy_of(corrupt(images, kind, severity, seed), labels) for kind in KINDS]
        rows.append([severity, *accs, float(np.mean(accs))])
    return rows


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
    bf16 = params["compute"]["precision"] != "fp32"  # on CUDA; the CPU scores in fp32
    prob_dog = dog_probabilities(
        net, test.images, int(meta["image_size"]), device, batch_size=batch_size, progress=True, bf16=bf16
    )

    metrics = classification_metrics(labels, prob_dog)
    metrics["ece"] = expected_calibration_error(labels, prob_dog)
    n_corrupt = min(params["evaluate"]["corruption_images"], len(test))
    if n_corrupt:
        def accuracy_of(images: torch.Tensor, truth: np.ndarray) -> float:
            prob = dog_probabilities(net, images, int(meta["image_size"]), device, batch_size=batch_size,
                                     bf16=bf16)
            return float(((prob >= 0.5) == truth).mean())

        table = corruption_table(accuracy_of, test.images[:n_corrupt], labels[:n_corrupt],
                                 params["evaluate"]["corruption_seed"])
        metrics["corruption_accuracy"] = float(np.mean([row[-1] for row in table[1:]]))
    clash = sorted(set(metrics) & set(info))
    if clash:
        raise SystemExit(f"error: models/{method}.json reuses metric keys {clash}")
    save_json(METRICS_DIR / f"{method}.json", {**metrics, **info})

    plots = PLOTS_DIR / method
    save_text(plots / "confusion.csv", confusion_csv(labels, prob_dog))
    fpr, tpr, _ = roc_curve(labels, prob_dog)
    roc = [[f"{a:.6f}", f"{b:.6f}"] for a, b in zip(fpr, tpr, strict=True)]
    save_text(plots / "roc.csv", csv_text(["fpr", "tpr"], roc))
    bins = reliability(labels, prob_dog)
    save_text(plots / "reliability.csv", csv_text(
        ["confidence", "accuracy", "count", "low", "high"],
        [[f"{b['confidence']:.6f}", f"{b['accuracy']:.6f}", b["count"], b["low"], b["high"]] for b in bins]))
    rows = [[row[0], *(f"{a:.6f}" for a in row[1:])] for row in table] if n_corrupt else []
    save_text(plots / "corruptions.csv", csv_text(["severity", *KINDS, "mean"], rows))
    print(f"{method}: test accuracy {metrics['accuracy']:.4f}, "
          f"ROC AUC {metrics['roc_auc']:.4f} on {metrics['n']} images, ECE {metrics['ece']:.4f}"
          + (f", mean accuracy under corruption {metrics['corruption_accuracy']:.4f} "
             f"({n_corrupt} images)" if n_corrupt else ""))
    clock.save()


if __name__ == "__main__":
    main()

"""How far a model's probabilities can be trusted and how it holds up off its training
distribution, scored on test with no training, the same way for the students (stage evaluate)
and the teacher (stage teacher_score):
  ece                  expected calibration error (catdog.calibration), with the reliability
                       diagram written to plots/<model>/reliability.csv;
  corruption_accuracy  mean accuracy over five common corruptions at severities 1-5
                       (catdog.corruptions) on the first `n` test images, with the accuracy at
                       each severity (0 = clean) written to plots/<model>/corruptions.csv.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from catdog.atomic import save_text
from catdog.calibration import expected_calibration_error, reliability
from catdog.corruptions import KINDS, SEVERITIES, corrupt


def csv_text(header: list[str], rows: list[list]) -> str:
    """Rows as CSV text under a header line."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def corruption_table(accuracy_of: Callable[[torch.Tensor, np.ndarray], float], images: torch.Tensor,
                     labels: np.ndarray, seed: int) -> list[list[float]]:
    """Rows [severity, accuracy per kind..., mean over kinds], severity 0 being the clean images;
    `accuracy_of(images, labels)` scores one batch of uint8 images."""
    clean = accuracy_of(images, labels)
    rows = [[0, *([clean] * len(KINDS)), clean]]
    for severity in SEVERITIES:
        accs = [accuracy_of(corrupt(images, kind, severity, seed), labels) for kind in KINDS]
        rows.append([severity, *accs, float(np.mean(accs))])
    return rows


def score_robustness(plots: Path, labels: np.ndarray, prob_dog: np.ndarray,
                     prob_dog_of: Callable[[torch.Tensor], np.ndarray], images: torch.Tensor,
                     n: int, seed: int) -> dict[str, float]:
    """{"ece", and "corruption_accuracy" when n > 0} of a model whose test probabilities are
    `prob_dog` and that scores any uint8 batch with `prob_dog_of`; writes its reliability and
    corruption CSVs under `plots`."""
    out = {"ece": expected_calibration_error(labels, prob_dog)}
    bins = reliability(labels, prob_dog)
    save_text(plots / "reliability.csv", csv_text(
        ["confidence", "accuracy", "count", "low", "high"],
        [[f"{b['confidence']:.6f}", f"{b['accuracy']:.6f}", b["count"], b["low"], b["high"]] for b in bins]))
    rows: list[list] = []
    if n:
        def accuracy_of(batch: torch.Tensor, truth: np.ndarray) -> float:
            return float(((prob_dog_of(batch) >= 0.5) == truth).mean())

        table = corruption_table(accuracy_of, images[:n], labels[:n], seed)
        out["corruption_accuracy"] = float(np.mean([row[-1] for row in table[1:]]))
        rows = [[row[0], *(f"{a:.6f}" for a in row[1:])] for row in table]
    save_text(plots / "corruptions.csv", csv_text(["severity", *KINDS, "mean"], rows))
    return out

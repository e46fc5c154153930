"""Calibration of a binary classifier's P(Dog): the reliability diagram and the expected
calibration error (ECE, Guo et al. 2017) over equal-width bins of the predicted class's
confidence, max(P(Dog), 1 - P(Dog)), which lies in [0.5, 1]."""

from __future__ import annotations

import numpy as np

BINS = 10  # equal-width confidence bins over [0.5, 1]


def reliability(labels: np.ndarray, prob_dog: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """One row per non-empty bin: its confidence range, image count, mean confidence and
    accuracy (the share of its images whose predicted class is right)."""
    labels, prob_dog = np.asarray(labels).astype(int), np.asarray(prob_dog, dtype=float)
    confidence = np.maximum(prob_dog, 1 - prob_dog)
    correct = (prob_dog >= 0.5).astype(int) == labels
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(mask.sum()),
                         "confidence": float(confidence[mask].mean()),
                         "accuracy": float(correct[mask].mean())})
    return rows


def expected_calibration_error(labels: np.ndarray, prob_dog: np.ndarray, bins: int = BINS) -> float:
    """Sum over bins of (share of images) x |accuracy - mean confidence|; 0 is perfectly calibrated."""
    rows = reliability(labels, prob_dog, bins)
    total = sum(r["count"] for r in rows)
    if not total:
        return 0.0
    return float(sum(r["count"] / total * abs(r["accuracy"] - r["confidence"]) for r in rows))

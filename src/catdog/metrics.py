"""Classification metrics shared by the teacher and evaluate stages (same keys for every method)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from catdog import CLASSES


def classification_metrics(labels: np.ndarray, prob_dog: np.ndarray) -> dict[str, float]:
    """Accuracy, per-class precision and recall (Cat, Dog) and ROC AUC from P(Dog): the columns
    of `dvc metrics show`, kept to what the reference study reports."""
    labels = np.asarray(labels).astype(int)
    prob_dog = np.asarray(prob_dog, dtype=float)
    pred = (prob_dog >= 0.5).astype(int)
    prec, rec, _, _ = precision_recall_fscore_support(
        labels, pred, labels=[0, 1], zero_division=0
    )
    out: dict[str, float] = {"accuracy": float((pred == labels).mean()), "n": int(len(labels))}
    for i, name in enumerate(CLASSES):
        key = name.lower()
        out[f"precision_{key}"] = float(prec[i])
        out[f"recall_{key}"] = float(rec[i])
    both = len(set(labels.tolist())) == 2
    out["roc_auc"] = float(roc_auc_score(labels, prob_dog)) if both else float("nan")
    return out


def confusion_rows(labels: np.ndarray, prob_dog: np.ndarray) -> list[dict[str, str]]:
    """One row per image (actual, predicted class name) for DVC's confusion template."""
    pred = (np.asarray(prob_dog) >= 0.5).astype(int)
    return [{"actual": CLASSES[a], "predicted": CLASSES[p]} for a, p in zip(labels, pred, strict=True)]


def confusion_csv(labels: np.ndarray, prob_dog: np.ndarray) -> str:
    """confusion_rows as CSV text (header actual,predicted)."""
    lines = ["actual,predicted"] + [f"{r['actual']},{r['predicted']}"
                                    for r in confusion_rows(labels, prob_dog)]
    return "\n".join(lines) + "\n"


def confusion(labels: np.ndarray, prob_dog: np.ndarray) -> np.ndarray:
    """2x2 confusion matrix, rows = actual (Cat, Dog), columns = predicted."""
    pred = (np.asarray(prob_dog) >= 0.5).astype(int)
    return confusion_matrix(np.asarray(labels).astype(int), pred, labels=[0, 1])

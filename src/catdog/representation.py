"""How good a frozen encoder's features are for Cat/Dog, without touching test.

A representation score reads pooled features of whole images and reports
  probe_val     a linear probe (logistic regression on the 420 labeled images) scored on val;
  probe_agree   the same probe's agreement with the teacher on held-out unlabeled images that no
                pool holds (no label needed; a tenth of val's noise at 2,000 images);
  knn_val       a weighted kNN vote on val with the labeled images as memory.
"""

from __future__ import annotations

import torch

from catdog.knn import knn_accuracy
from catdog.logistic_head import fit_logistic

KNN_K = 20  # neighbours of the kNN score


def score(labeled: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
          held: tuple[torch.Tensor, torch.Tensor] | None = None, k: int = KNN_K) -> dict[str, float]:
    """Representation score of features: each argument is (features [N, D], labels [N]); `held`
    pairs held-out features with the teacher's labels of them (omitted: no probe_agree)."""
    (lab_x, lab_y), (val_x, val_y) = labeled, val
    scaler, lr = fit_logistic(lab_x.double().numpy(), lab_y.numpy())

    def accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
        return float((lr.predict(scaler.transform(x.double().numpy())) == y.numpy()).mean())

    out = {"probe_val": accuracy(val_x, val_y), "knn_val": knn_accuracy(lab_x, lab_y, val_x, val_y, k)}
    if held is not None:
        out["probe_agree"] = accuracy(*held)
    return out

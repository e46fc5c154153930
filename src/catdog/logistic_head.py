"""A binary logistic regression on frozen features, and the same model as a linear layer.

The teacher's head (fit_head: C chosen on val) and the representation probe (fit_logistic at a
fixed C) are both this regression; linear_head / logistic_to_linear turn it into an nn.Linear
with two logits whose softmax is the regression's probability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:  # scikit-learn is imported where a regression is fitted: it costs a stage's
    # start about 2.5 s, and most stages that import this module only convert a fitted head
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

PROBE_C = 0.1  # inverse L2 strength of the representation probe (standardised features), fixed
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)  # C values fit_head tries on val (the teacher's head)
MAX_ITER = 5000  # lbfgs iterations: enough to converge on standardised features


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = PROBE_C, seed: int = 0
                 ) -> tuple[StandardScaler, LogisticRegression]:
    """Standardise `x`, then fit a binary logistic regression with inverse L2 strength `c`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    return scaler, LogisticRegression(C=c, max_iter=MAX_ITER, random_state=seed).fit(scaler.transform(x), y)


def fit_head(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
             seed: int) -> tuple[StandardScaler, LogisticRegression, float, float]:
    """One fit per C in C_GRID, keeping the best val accuracy; ties go to the lower val log-loss,
    so the head's probabilities (the teacher's soft targets) are the best calibrated.
    Returns (scaler, model, C, val accuracy)."""
    from sklearn.metrics import log_loss

    best: tuple[StandardScaler, LogisticRegression, float, float, float] | None = None
    for c in C_GRID:
        scaler, lr = fit_logistic(train_x, train_y, c, seed)
        val_z = scaler.transform(val_x)
        acc = float((lr.predict(val_z) == val_y).mean())
        loss = float(log_loss(val_y, lr.predict_proba(val_z), labels=[0, 1]))
        if best is None or (acc, -loss) > (best[3], -best[4]):
            best = (scaler, lr, c, acc, loss)
    assert best is not None
    return best[:4]


def logistic_to_linear(scaler: StandardScaler, lr: LogisticRegression) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [2, D], bias [2]) of a linear layer on raw features whose softmax equals the
    binary logistic regression z = coef . ((x - mean) / scale) + intercept: logits [-z/2, z/2]."""
    w = torch.from_numpy(lr.coef_).reshape(-1).double() / torch.from_numpy(scaler.scale_).double()
    b = float(lr.intercept_[0]) - float((w * torch.from_numpy(scaler.mean_).double()).sum())
    return torch.stack([-w / 2, w / 2]).float(), torch.tensor([-b / 2, b / 2]).float()


def linear_head(scaler: StandardScaler, lr: LogisticRegression) -> nn.Linear:
    """The fitted logistic regression as a new nn.Linear(D, 2)."""
    weight, bias = logistic_to_linear(scaler, lr)
    head = nn.Linear(weight.shape[1], 2)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return head

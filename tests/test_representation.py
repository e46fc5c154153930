"""The representation score: chance on features that carry no label, 1 on separable ones; the
logistic head as a linear layer gives the regression's own probabilities."""

from __future__ import annotations

import numpy as np
import torch

from catdog import logistic_head, representation


def _labels(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).permutation(np.repeat([0, 1], n // 2)))


def test_features_that_carry_no_label_score_near_chance() -> None:
    g = torch.Generator().manual_seed(0)
    sizes = {"lab": 400, "val": 2000, "held": 2000}
    feats = {name: torch.randn(n, 64, generator=g) for name, n in sizes.items()}
    got = representation.score((feats["lab"], _labels(400, 1)), (feats["val"], _labels(2000, 2)),
                               (feats["held"], _labels(2000, 3)))
    for key in ("probe_val", "probe_agree", "knn_val"):
        assert abs(got[key] - 0.5) < 0.05, (key, got[key])  # 2,000 images: one SE is 0.011


def test_separable_features_score_near_one() -> None:
    g = torch.Generator().manual_seed(0)

    def split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = _labels(n, seed)
        x = torch.randn(n, 64, generator=g)
        x[:, :4] += 3.0 * (2 * y[:, None].float() - 1)  # the class moves 4 of 64 dimensions
        return x, y

    got = representation.score(split(100, 1), split(400, 2), split(400, 3))
    assert got["probe_val"] > 0.97 and got["probe_agree"] > 0.97 and got["knn_val"] > 0.9


def test_no_heldout_set_means_no_agreement() -> None:
    x, y = torch.randn(20, 8), _labels(20, 0)
    assert set(representation.score((x, y), (x, y))) == {"probe_val", "knn_val"}


def test_logistic_head_gives_the_regression_probabilities() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    x = rng.normal(size=(100, 6)) * [1, 10, 0.1, 1, 1, 5] + y[:, None] + 3.0  # unscaled, off-centre
    scaler, lr = logistic_head.fit_logistic(x, y)
    head = logistic_head.linear_head(scaler, lr)
    with torch.no_grad():
        prob_dog = head(torch.from_numpy(x).float()).softmax(1)[:, 1].numpy()
    np.testing.assert_allclose(prob_dog, lr.predict_proba(scaler.transform(x))[:, 1], atol=1e-5)

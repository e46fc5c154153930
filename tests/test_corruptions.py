"""Corruptions are deterministic, keep shape and dtype, and grow harsher with severity; the
calibration error is 0 for a calibrated classifier and matches a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_split

from catdog.calibration import expected_calibration_error, reliability
from catdog.corruptions import KINDS, SEVERITIES, corrupt


@pytest.fixture(scope="module")
def images(shared_zip) -> torch.Tensor:
    return make_split(shared_zip, per_class=4, size=180).images  # real photos at the cache's side


@pytest.mark.parametrize("kind", KINDS)
def test_corruption_is_deterministic_and_severity_ordered(images: torch.Tensor, kind: str) -> None:
    distances = []
    for severity in SEVERITIES:
        out = corrupt(images, kind, severity, seed=3)
        assert out.dtype == torch.uint8 and out.shape == images.shape
        assert torch.equal(out, corrupt(images, kind, severity, seed=3))  # same seed, same bytes
        distances.append((out.float() - images.float()).abs().mean().item())
    assert distances[0] > 0.5, distances  # severity 1 changes the image
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances  # harsher


def test_noise_follows_the_seed(images: torch.Tensor) -> None:
    assert not torch.equal(corrupt(images, "gaussian_noise", 2, seed=0),
                           corrupt(images, "gaussian_noise", 2, seed=1))


def test_bad_requests_are_refused(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(images, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "jpeg", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(images.float(), "jpeg", 1)


def test_calibration_error_by_hand() -> None:
    labels = np.array([1, 1, 0, 0, 1])
    prob_dog = np.array([0.95, 0.95, 0.05, 0.95, 0.6])  # confidences .95 .95 .95 .95 .6
    rows = reliability(labels, prob_dog)
    assert [(r["count"], r["accuracy"]) for r in rows] == [(1, 1.0), (4, 0.75)]
    # bins: [0.55, 0.6] holds 0.6 (right, conf 0.6); [0.9, 0.95] holds four at 0.95, three right
    want = 1 / 5 * abs(1.0 - 0.6) + 4 / 5 * abs(0.75 - 0.95)
    assert expected_calibration_error(labels, prob_dog) == pytest.approx(want)


def test_a_calibrated_classifier_has_near_zero_error() -> None:
    rng = np.random.default_rng(0)
    prob_dog = rng.uniform(0, 1, 200_000)
    labels = (rng.uniform(0, 1, prob_dog.size) < prob_dog).astype(int)  # P(Dog) is the truth
    assert expected_calibration_error(labels, prob_dog) < 0.01
    assert expected_calibration_error(labels, np.where(prob_dog > 0.5, 1.0, 0.0)) > 0.2  # overconfident

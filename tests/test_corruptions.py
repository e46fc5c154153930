"""Corruptions are deterministic, keep shape and dtype, grow harsher with severity and give the
bytes of their plain whole-tensor forms (below); the calibration error is 0 for a calibrated
classifier and matches a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_split
from torchvision.transforms.functional import gaussian_blur

from catdog.calibration import expected_calibration_error, reliability
from catdog.corruptions import (
    BLUR_SIGMA_224,
    BRIGHTNESS_SHIFT,
    CONTRAST_FACTOR,
    KINDS,
    NOISE_STD,
    SEVERITIES,
    corrupt,
)


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


def plain_corruption(images: torch.Tensor, kind: str, severity: int, seed: int) -> torch.Tensor:
    """The corruptions as first written (and as published in results/ up to 2026-12-06): float
    arithmetic on the whole tensor and torchvision's 2-D Gaussian blur."""
    level = severity - 1
    x = images.float() / 255
    if kind == "gaussian_noise":
        g = torch.Generator().manual_seed(seed * 1000 + severity)
        x = x + NOISE_STD[level] * torch.randn(x.shape, generator=g)
    elif kind == "gaussian_blur":
        sigma = BLUR_SIGMA_224[level] * images.shape[-1] / 224
        x = gaussian_blur(x, kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma)
    elif kind == "brightness":
        x = x + BRIGHTNESS_SHIFT[level]
    else:  # contrast
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * CONTRAST_FACTOR[level] + mean
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@pytest.mark.parametrize("kind", ["gaussian_noise", "brightness", "contrast"])
def test_fast_forms_give_the_plain_bytes(images: torch.Tensor, kind: str) -> None:
    for severity in SEVERITIES:
        assert torch.equal(corrupt(images, kind, severity, seed=5),
                           plain_corruption(images, kind, severity, seed=5)), (kind, severity)


def test_separable_blur_matches_the_2d_blur_but_for_rounding(images: torch.Tensor) -> None:
    odd = images[:, :, :, :171]  # a non-square image: rows and columns take their own matrix
    for batch in (images, odd):
        for severity in SEVERITIES:
            fast = corrupt(batch, "gaussian_blur", severity).int()
            plain = plain_corruption(batch, "gaussian_blur", severity, seed=0).int()
            diff = (fast - plain).abs()
            assert diff.max() <= 1, severity  # float rounding, at most one grey level
            assert (diff > 0).float().mean() < 1e-3, severity  # measured: 3e-5 of the pixels


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

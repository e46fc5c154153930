"""Common corruptions of uint8 images, ImageNet-C style (Hendrycks & Dietterich, ICLR 2019):
five kinds at severities 1-5, each deterministic given a seed, each harsher at a higher severity.

The strengths follow ImageNet-C's tables for its 224 px images (blur radii scaled to the
image's side); brightness is an additive shift of every channel (ImageNet-C shifts HSV value).

Every kind is computed in float32 on [0, 1] pixel values and rounded back to uint8. Brightness
and contrast map each pixel value alone (contrast through its image's mean), so they run as a
256-entry table per image, built with the same float32 operations: the same bytes as the
whole-tensor arithmetic at a fraction of its cost. The blur is torchvision's Gaussian kernel
applied as a row and a column pass, each one matrix product (BLAS) instead of torchvision's
2-D depthwise convolution: 3x faster on 1,000 photos (benchmarks/bench_robustness.py), and the
same bytes but for the rare pixel that float rounding moves by one grey level
(tests/test_corruptions.py holds the plain forms and checks both claims).
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

from catdog.blur import reflect_band

KINDS = ("gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast")
SEVERITIES = (1, 2, 3, 4, 5)
NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)  # of [0, 1] pixel values
BLUR_SIGMA_224 = (1.0, 2.0, 3.0, 4.0, 6.0)  # px at a 224 px side
JPEG_QUALITY = (25, 18, 15, 10, 7)
BRIGHTNESS_SHIFT = (0.1, 0.2, 0.3, 0.4, 0.5)  # added to [0, 1] pixel values
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)  # distance to the image's mean grey kept
VALUES = torch.arange(256, dtype=torch.float32) / 255  # every uint8 pixel value on [0, 1]


def corrupt(images: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """`images` (uint8 [N, 3, H, W]) under corruption `kind` at `severity` (1-5), as uint8."""
    if kind not in KINDS:
        raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(KINDS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"want uint8 [N, 3, H, W], got {images.dtype} {list(images.shape)}")
    level = severity - 1
    if kind == "jpeg":
        return _jpeg(images, JPEG_QUALITY[level])
    if kind == "brightness":
        return _per_image_table(images, (VALUES + BRIGHTNESS_SHIFT[level]).expand(len(images), 256))
    if kind == "contrast":
        mean = (images.float() / 255).mean(dim=(1, 2, 3), keepdim=True).view(-1, 1)
        return _per_image_table(images, (VALUES - mean) * CONTRAST_FACTOR[level] + mean)
    x = images.float().div_(255)
    if kind == "gaussian_noise":
        g = torch.Generator().manual_seed(seed * 1000 + severity)
        x.add_(torch.randn(x.shape, generator=g).mul_(NOISE_STD[level]))
    else:  # gaussian_blur
        x = _separable_blur(x, BLUR_SIGMA_224[level] * images.shape[-1] / 224)
    return _to_uint8(x)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float values (clamped) as uint8."""
    return x.clamp_(0, 1).mul_(255).round_().to(torch.uint8)


def _per_image_table(images: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Each image's pixels mapped through its own row of `values` (float [N, 256] on [0, 1])."""
    table = _to_uint8(values.clone()).numpy()
    rows = np.arange(len(images))[:, None, None, None]
    return torch.from_numpy(table[rows, images.numpy()])


def _separable_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """torchvision's gaussian_blur (its 1-D kernel, reflect padding) as a row and a column pass,
    each a product with a banded [side, side] matrix that folds the reflection in."""
    size = 2 * math.ceil(3 * sigma) + 1
    if size // 2 >= min(x.shape[-2:]):
        raise ValueError(f"blur radius {size // 2} needs images wider than {min(x.shape[-2:])} px")
    lim = (size - 1) / (2.0 * math.sqrt(2.0))  # torchvision's _get_gaussian_kernel1d
    kernel = torch.softmax(torch.linspace(-lim, lim, steps=size).div(sigma).pow(2).neg(), dim=0)
    rows, cols = (reflect_band(kernel[None], side)[0] for side in x.shape[-2:])
    return rows @ (x @ cols.T)


def _jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    out = []
    for image in images.permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()

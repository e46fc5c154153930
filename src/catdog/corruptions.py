"""Common corruptions of uint8 images, ImageNet-C style (Hendrycks & Dietterich, ICLR 2019):
five kinds at severities 1-5, each deterministic given a seed, each harsher at a higher severity.

The strengths follow ImageNet-C's tables for its 224 px images (blur radii scaled to the
image's side); brightness is an additive shift of every channel (ImageNet-C shifts HSV value).
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

KINDS = ("gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast")
SEVERITIES = (1, 2, 3, 4, 5)
NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)  # of [0, 1] pixel values
BLUR_SIGMA_224 = (1.0, 2.0, 3.0, 4.0, 6.0)  # px at a 224 px side
JPEG_QUALITY = (25, 18, 15, 10, 7)
BRIGHTNESS_SHIFT = (0.1, 0.2, 0.3, 0.4, 0.5)  # added to [0, 1] pixel values
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)  # distance to the image's mean grey kept


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


def _jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    out = []
    for image in images.permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()

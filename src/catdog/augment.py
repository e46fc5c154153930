"""Batched image augmentation in plain torch, on whatever device the uint8 batch lives on.

Every function takes a uint8 batch [N, 3, H, W] (the image cache) and returns a float32 batch
[N, 3, out, out] normalised with catdog.models.MEAN/STD. There are no per-image Python loops and
no host syncs: each step is one batched op over the whole batch, and every random number comes
from the caller's `torch.Generator` (on the images' device), so a seed fixes the output.

Random resized crop + flip are two small per-sample resampling matrices applied with batched
matmuls: out = A_y @ image @ A_x^T, where row i of A_x holds the antialiased bilinear (triangle
filter, as PIL and `F.interpolate(antialias=True)`) weights of output column i inside the crop
window. A flip reverses the rows of A_x. Gaussian blur is likewise a per-sample matrix B with
reflect borders: blurred = B @ image @ B^T.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from catdog.blur import reflect_band
from catdog.models import MEAN, STD

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale
# RGB -> YIQ: Y is luma, (I, Q) the chroma plane that a hue shift rotates.
RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
YIQ_TO_RGB = tuple(map(tuple, torch.linalg.inv(torch.tensor(RGB_TO_YIQ).double()).tolist()))
CROP_TRIALS = 10  # crop proposals per image before falling back to the whole image (as torchvision)


@lru_cache(maxsize=64)
def _const(values: tuple, device: torch.device) -> torch.Tensor:
    """A small float32 constant on `device`, copied there once (a host->GPU copy syncs)."""
    return torch.tensor(values, dtype=torch.float32).to(device)


def _check(images: torch.Tensor, generator: torch.Generator | None = None) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 batch [N, 3, H, W], got {images.dtype} "
                         f"{list(images.shape)}")
    if generator is not None and generator.device.type != images.device.type:
        raise ValueError(f"generator on {generator.device} but images on {images.device}")


def _rand(n: int, generator: torch.Generator, device: torch.device, *shape: int) -> torch.Tensor:
    """Uniform [0, 1) float32 numbers of shape [n, *shape]."""
    return torch.rand((n, *shape), generator=generator, device=device)


def _uniform(lo: float, hi: float, n: int, g: torch.Generator,
             device: torch.device) -> torch.Tensor:
    """U(lo, hi) float32 numbers of shape [n]."""
    return lo + (hi - lo) * _rand(n, g, device)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB -> network input (ImageNet mean/std)."""
    mean, std = _const(MEAN, x.device).view(1, 3, 1, 1), _const(STD, x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def unnormalize(x: torch.Tensor) -> torch.Tensor:
    """Network input -> [0, 1] RGB (inverse of `normalize`, for tests and pictures)."""
    mean, std = _const(MEAN, x.device).view(1, 3, 1, 1), _const(STD, x.device).view(1, 3, 1, 1)
    return x * std + mean


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma [N, 1, H, W] of an RGB batch [N, 3, H, W]."""
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _rows_cols(rows: torch.Tensor, cols: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """rows[n] @ x[n, c] @ cols[n]^T: rows [N, Ho, H], cols [N, Wo, W], x [N, C, H, W]."""
    n, c, h, w = x.shape
    x = torch.bmm(x.reshape(n, c * h, w), cols.transpose(1, 2))  # [N, C*H, Wo]
    return torch.matmul(rows.unsqueeze(1), x.view(n, c, h, -1))  # [N, C, Ho, Wo]


def _resample_matrix(start: torch.Tensor, length: torch.Tensor, in_size: int,
                     out_size: int) -> torch.Tensor:
    """[N, out_size, in_size]: row i resamples output pixel i of the window [start, start+length)
    (in pixels, per sample) with PIL-style antialiased bilinear weights, renormalised at borders."""
    device = start.device
    scale = length / out_size  # source pixels per output pixel, [N]
    support = scale.clamp(min=1.0)  # the triangle widens when shrinking (antialiasing)
    centres = start[:, None] + (torch.arange(out_size, device=device) + 0.5) * scale[:, None]
    src = torch.arange(in_size, device=device) + 0.5  # source pixel centres
    dist = (src[None, None, :] - centres[:, :, None]).abs() / support[:, None, None]
    weights = (1.0 - dist).clamp_(min=0.0)
    return weights / weights.sum(-1, keepdim=True)


def _crop_boxes(n: int, h: int, w: int, g: torch.Generator, device: torch.device,
                scale: tuple[float, float], ratio: tuple[float, float]) -> tuple[torch.Tensor, ...]:
    """RandomResizedCrop boxes (x0, y0, width, height) in pixels, [N] each, as torchvision samples
    them: area fraction ~ U(scale), log aspect ~ U(log ratio); the first of CROP_TRIALS proposals
    that fits the image is kept, else the whole image."""
    area = h * w * (scale[0] + (scale[1] - scale[0]) * _rand(n, g, device, CROP_TRIALS))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * _rand(n, g, device, CROP_TRIALS))
    cw, ch = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (cw <= w) & (ch <= h)
    first = fits.int().argmax(1, keepdim=True)  # index of the first fitting proposal (0 if none)
    any_fit = fits.any(1)
    cw = torch.where(any_fit, cw.gather(1, first).squeeze(1), float(w))
    ch = torch.where(any_fit, ch.gather(1, first).squeeze(1), float(h))
    x0 = (w - cw) * _rand(n, g, device)
    y0 = (h - ch) * _rand(n, g, device)
    return x0, y0, cw, ch


def _crop_flip(images: torch.Tensor, out_size: int, g: torch.Generator,
               scale: tuple[float, float], ratio: tuple[float, float],
               p_flip: float) -> torch.Tensor:
    """Random resized crop + horizontal flip of a uint8 batch -> float [0, 1] [N, 3, out, out]."""
    n, _, h, w = images.shape
    device = images.device
    x0, y0, cw, ch = _crop_boxes(n, h, w, g, device, scale, ratio)
    rows = _resample_matrix(y0, ch, h, out_size) / 255.0  # folds uint8 -> [0, 1] into the matmul
    cols = _resample_matrix(x0, cw, w, out_size)
    flip = _rand(n, g, device) < p_flip
    cols = torch.where(flip[:, None, None], cols.flip(1), cols)
    return _rows_cols(rows, cols, images.float())


def _color_jitter(x: torch.Tensor, g: torch.Generator, strength: float, hue: float,
                  p: float) -> torch.Tensor:
    """Brightness, contrast, saturation (factors ~ U(1 - strength, 1 + strength)) and hue (a YIQ
    rotation by 2*pi*U(-hue, hue)), applied in that fixed order to a random fraction p of the
    batch; the others get identity factors."""
    n, device = x.shape[0], x.device
    apply = _rand(n, g, device) < p

    def factor(s: float) -> torch.Tensor:
        return torch.where(apply, _uniform(1.0 - s, 1.0 + s, n, g, device), 1.0)

    brightness, contrast, saturation = factor(strength), factor(strength), factor(strength)
    angle = torch.where(apply, _uniform(-hue, hue, n, g, device), 0.0) * (2 * math.pi)

    x = (x * brightness.view(n, 1, 1, 1)).clamp_(0.0, 1.0)
    mean = _gray(x).mean((2, 3), keepdim=True)
    x = ((x - mean) * contrast.view(n, 1, 1, 1) + mean).clamp_(0.0, 1.0)

    # Saturation (blend with the luma image) and hue (rotate chroma) are both linear: one 3x3
    # matrix per image.
    eye = torch.eye(3, device=device)
    luma = _const(GRAY_WEIGHTS, device).expand(3, 3)  # every row = the luma weights
    s = saturation.view(n, 1, 1)
    sat = s * eye + (1 - s) * luma
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(n, 3, 3, device=device)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    mix = _const(YIQ_TO_RGB, device) @ rot @ _const(RGB_TO_YIQ, device) @ sat  # [N, 3, 3]
    return torch.bmm(mix, x.flatten(2)).view_as(x).clamp_(0.0, 1.0)


def _grayscale(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    """Replace a random fraction p of the images by their luma in all three channels."""
    gray = _rand(x.shape[0], g, x.device) < p
    return torch.where(gray[:, None, None, None], _gray(x).expand_as(x), x)


def _blur_matrix(sigma: torch.Tensor, size: int, radius: int) -> torch.Tensor:
    """[N, size, size] Gaussian blur (std sigma[n], taps -radius..radius, reflect borders)."""
    taps = torch.arange(-radius, radius + 1, device=sigma.device)
    kernel = torch.exp(-(taps[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    return reflect_band(kernel / kernel.sum(1, keepdim=True), size)


def _gaussian_blur(x: torch.Tensor, g: torch.Generator, sigma: tuple[float, float],
                   p: float) -> torch.Tensor:
    """Blur a random fraction p of a square batch with sigma ~ U(sigma); the rest pass through
    (sigma -> 0 makes the kernel a delta)."""
    n, size, device = x.shape[0], x.shape[-1], x.device
    blur = _rand(n, g, device) < p
    s = torch.where(blur, _uniform(sigma[0], sigma[1], n, g, device), 1e-3)
    radius = min(math.ceil(3 * sigma[1]), size - 1)  # 3 sigma covers 99.7% of the kernel
    blur_mat = _blur_matrix(s, size, radius)
    return _rows_cols(blur_mat, blur_mat, x)


def simclr_views(images: torch.Tensor, out_size: int, generator: torch.Generator, *,
                 min_scale: float = 0.08, ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 jitter: float = 0.4, hue: float = 0.1, p_jitter: float = 0.8,
                 p_gray: float = 0.2, sigma: tuple[float, float] = (0.1, 2.0),
                 p_blur: float = 0.5, p_flip: float = 0.5) -> torch.Tensor:
    """One SimCLR view of every image (call twice for the two views).

    images: uint8 [N, 3, H, W]; returns normalised float32 [N, 3, out_size, out_size].
    min_scale: smallest crop area fraction; ratio: crop aspect range (log-uniform);
    jitter: brightness/contrast/saturation strength; hue: max hue shift (fraction of a turn);
    p_*: per-image probability of jitter, grayscale, blur and horizontal flip;
    sigma: blur std range in output pixels.
    """
    _check(images, generator)
    with torch.autocast(images.device.type, enabled=False):  # float32 even inside autocast
        x = _crop_flip(images, out_size, generator, (min_scale, 1.0), ratio, p_flip)
        x = _color_jitter(x, generator, jitter, hue, p_jitter)
        x = _grayscale(x, generator, p_gray)
        x = _gaussian_blur(x, generator, sigma, p_blur)
        return normalize(x)


def train_view(images: torch.Tensor, out_size: int, generator: torch.Generator, *,
               min_scale: float = 0.35, ratio: tuple[float, float] = (3 / 4, 4 / 3),
               p_flip: float = 0.5) -> torch.Tensor:
    """Light supervised augmentation: random resized crop + horizontal flip, normalised."""
    return normalize(crop_flip01(images, out_size, generator, min_scale=min_scale, ratio=ratio,
                                 p_flip=p_flip))


def eval_view(images: torch.Tensor, out_size: int) -> torch.Tensor:
    """The whole image resized to out_size (antialiased bilinear), normalised. Deterministic."""
    _check(images)
    with torch.autocast(images.device.type, enabled=False):
        x = images.float()
        if x.shape[-2:] != (out_size, out_size):
            x = F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False,
                              antialias=True)
        return normalize(x / 255.0)


def crop_flip01(images: torch.Tensor, out_size: int, generator: torch.Generator, *,
                min_scale: float = 0.35, ratio: tuple[float, float] = (3 / 4, 4 / 3),
                p_flip: float = 0.5) -> torch.Tensor:
    """Random resized crop + flip in [0, 1] (not normalised): one crop that both the teacher and
    the student can look at (each normalises it its own way)."""
    _check(images, generator)
    with torch.autocast(images.device.type, enabled=False):
        return _crop_flip(images, out_size, generator, (min_scale, 1.0), ratio, p_flip)


def crop_boxes01(n: int, generator: torch.Generator, *, min_scale: float = 0.35,
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), p_flip: float = 0.5) -> torch.Tensor:
    """[N, 5] random resized-crop boxes as fractions of the image side, (x0, y0, width, height,
    flip 0/1), sampled as crop_flip01 samples them: a crop kept so that it can be cut again, at
    any side, by cut_boxes01 (the teacher's view and the student's of the very same crop)."""
    device = generator.device
    x0, y0, cw, ch = _crop_boxes(n, 1, 1, generator, device, (min_scale, 1.0), ratio)
    flip = (_rand(n, generator, device) < p_flip).float()
    return torch.stack([x0, y0, cw, ch, flip], dim=1)


def cut_boxes01(images: torch.Tensor, boxes: torch.Tensor, out_size: int) -> torch.Tensor:
    """The crops of crop_boxes01's `boxes` [N, 5] from a uint8 batch, resized to out_size, in [0, 1]."""
    _check(images)
    n, _, h, w = images.shape
    boxes = boxes.to(images.device, torch.float32)
    with torch.autocast(images.device.type, enabled=False):
        rows = _resample_matrix(boxes[:, 1] * h, boxes[:, 3] * h, h, out_size) / 255.0
        cols = _resample_matrix(boxes[:, 0] * w, boxes[:, 2] * w, w, out_size)
        cols = torch.where(boxes[:, 4, None, None] > 0.5, cols.flip(1), cols)
        return _rows_cols(rows, cols, images.float())


def crop_maps(maps: torch.Tensor, boxes: torch.Tensor, side: int) -> torch.Tensor:
    """Whole-image maps [N, h, w] or [N, C, h, w] (the teacher's energy or feature maps) ->
    [N, 1 or C, side, side]: the region of each crop box (crop_boxes01: x0, y0, width, height as
    fractions of the image side, flip 0/1), averaged over side x side bins (RoIAlign,
    pixel-aligned) and mirrored where the crop is flipped: the teacher's map of the whole image,
    seen through the student's crop."""
    maps = maps.float()
    if maps.dim() == 3:
        maps = maps.unsqueeze(1)
    h, w = maps.shape[-2:]
    boxes = boxes.to(maps.device, torch.float32)
    x0, y0 = boxes[:, 0] * w, boxes[:, 1] * h
    rois = torch.stack([torch.arange(len(boxes), device=maps.device, dtype=torch.float32),
                        x0, y0, x0 + boxes[:, 2] * w, y0 + boxes[:, 3] * h], dim=1)
    out = roi_align(maps, rois, output_size=(side, side), spatial_scale=1.0, aligned=True)
    return torch.where(boxes[:, 4, None, None, None] > 0.5, out.flip(-1), out)

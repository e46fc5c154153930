"""Batched augmentation: shapes, seeding, flips, grayscale, crops, blur, real photos (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2.functional import gaussian_blur

from catdog.augment import eval_view, simclr_views, train_view, unnormalize
from catdog.models import MEAN, STD

# simclr_views settings that switch every random step off except the crop and flip
NO_COLOR = {"p_jitter": 0.0, "p_gray": 0.0, "p_blur": 0.0}
FULL_CROP = {"min_scale": 1.0, "ratio": (1.0, 1.0)}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(n: int = 6, size: int = 48, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen(seed))


def half_images(n: int, size: int = 16) -> torch.Tensor:
    """Images with a black left half and a white right half."""
    images = torch.zeros(n, 3, size, size, dtype=torch.uint8)
    images[..., size // 2:] = 255
    return images


def flipped(out: torch.Tensor) -> torch.Tensor:
    """Per image: True where the left half is brighter than the right (a flipped half_image)."""
    x = unnormalize(out).mean(1)
    half = x.shape[-1] // 2
    return x[..., :half].mean((1, 2)) > x[..., half:].mean((1, 2))


def test_shapes_dtypes_and_range() -> None:
    images = random_images(5, 40)
    lo = (0 - torch.tensor(MEAN)) / torch.tensor(STD)
    hi = (1 - torch.tensor(MEAN)) / torch.tensor(STD)
    for out in (simclr_views(images, 24, gen()), train_view(images, 24, gen()),
                eval_view(images, 24), simclr_views(images, 56, gen())):
        assert out.dtype == torch.float32
        assert out.shape[:2] == (5, 3) and out.shape[2] == out.shape[3]
        assert torch.isfinite(out).all()
        per_channel = out.transpose(0, 1).flatten(1)
        assert (per_channel.min(1).values >= lo - 1e-4).all()
        assert (per_channel.max(1).values <= hi + 1e-4).all()


def test_same_seed_same_output_different_seed_different() -> None:
    images = random_images()
    for fn in (simclr_views, train_view):
        a, b, c = fn(images, 32, gen(3)), fn(images, 32, gen(3)), fn(images, 32, gen(4))
        assert torch.equal(a, b)
        assert not torch.allclose(a, c)
    g = gen(5)
    view1, view2 = simclr_views(images, 32, g), simclr_views(images, 32, g)
    assert not torch.allclose(view1, view2)  # two calls on one generator: two different views


def test_eval_view_is_deterministic_and_identity_at_full_size() -> None:
    images = random_images(4, 32)
    torch.testing.assert_close(eval_view(images, 32), eval_view(images, 32), rtol=0, atol=0)
    back = unnormalize(eval_view(images, 32)) * 255
    torch.testing.assert_close(back, images.float(), rtol=0, atol=1e-3)
    small = eval_view(images, 16)
    assert small.shape == (4, 3, 16, 16)
    # antialiased bilinear as PIL does it (PIL works in fixed point and rounds: 1 level)
    pil = torch.stack([
        torch.from_numpy(np.array(Image.fromarray(im.permute(1, 2, 0).numpy())
                                    .resize((16, 16), Image.BILINEAR))).permute(2, 0, 1)
        for im in images]).float()
    torch.testing.assert_close(unnormalize(small) * 255, pil, rtol=0, atol=1.0 + 1e-3)


@pytest.mark.parametrize("out_size", [48, 30, 20, 72])
def test_full_crop_reproduces_the_resized_image(out_size: int) -> None:
    images = random_images(3, 48)
    want = eval_view(images, out_size)
    got = simclr_views(images, out_size, gen(), **FULL_CROP, **NO_COLOR, p_flip=0.0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
    got = train_view(images, out_size, gen(), **FULL_CROP, p_flip=0.0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_crops_zoom_in() -> None:
    """A small crop of a black/white half image is mostly one colour; the full image is not."""
    images = half_images(200, 32)
    out = unnormalize(train_view(images, 16, gen(), min_scale=0.08, p_flip=0.0)).mean((1, 2, 3))
    full = unnormalize(eval_view(images, 16)).mean((1, 2, 3))
    torch.testing.assert_close(full, torch.full_like(full, 0.5), rtol=0, atol=1e-4)
    assert out.std() > 0.15  # crops land in one half or the other
    assert ((out - 0.5).abs() > 0.3).float().mean() > 0.1


def test_flip_probability() -> None:
    images = half_images(400)
    for fn in (simclr_views, train_view):
        extra = NO_COLOR if fn is simclr_views else {}
        assert flipped(fn(images, 16, gen(), **FULL_CROP, **extra, p_flip=1.0)).all()
        assert not flipped(fn(images, 16, gen(), **FULL_CROP, **extra, p_flip=0.0)).any()
        rate = flipped(fn(images, 16, gen(), **FULL_CROP, **extra, p_flip=0.5)).float().mean()
        assert 0.42 < rate.item() < 0.58  # 400 draws: 4 standard deviations
    # a flip mirrors the image exactly
    images = random_images(3, 24)
    out = simclr_views(images, 24, gen(), **FULL_CROP, **NO_COLOR, p_flip=1.0)
    torch.testing.assert_close(out, eval_view(images, 24).flip(-1), rtol=0, atol=1e-4)


def test_grayscale() -> None:
    images = random_images(8, 24)
    x = unnormalize(simclr_views(images, 24, gen(), p_gray=1.0))
    torch.testing.assert_close(x[:, 0], x[:, 1], rtol=0, atol=1e-5)
    torch.testing.assert_close(x[:, 1], x[:, 2], rtol=0, atol=1e-5)
    x = unnormalize(simclr_views(images, 24, gen(), p_gray=0.0, p_jitter=0.0))
    assert (x[:, 0] - x[:, 1]).abs().max() > 0.1


def test_color_jitter() -> None:
    images = random_images(16, 24)
    plain = simclr_views(images, 24, gen(), **FULL_CROP, **NO_COLOR, p_flip=0.0)
    jittered = simclr_views(images, 24, gen(), **FULL_CROP, **{**NO_COLOR, "p_jitter": 1.0},
                            p_flip=0.0)
    changed = (jittered - plain).abs().flatten(1).amax(1) > 0.05
    assert changed.all()  # every image got other brightness/contrast/saturation/hue
    # zero strength is the identity
    none = simclr_views(images, 24, gen(), **FULL_CROP, **{**NO_COLOR, "p_jitter": 1.0},
                        p_flip=0.0, jitter=0.0, hue=0.0)
    torch.testing.assert_close(none, plain, rtol=0, atol=1e-4)
    # hue alone keeps the luma (a rotation of the chroma plane) of unclipped pixels
    mid = (images // 4 + 96).to(torch.uint8)  # values in [96, 159]: no clipping
    base = unnormalize(simclr_views(mid, 24, gen(), **FULL_CROP, **NO_COLOR, p_flip=0.0))
    hued = unnormalize(simclr_views(mid, 24, gen(), **FULL_CROP, **{**NO_COLOR, "p_jitter": 1.0},
                                    p_flip=0.0, jitter=0.0, hue=0.5))
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close((hued * luma).sum(1), (base * luma).sum(1), rtol=0, atol=2e-3)
    assert (hued - base).abs().max() > 0.05


def test_blur_matches_torchvision_gaussian_blur() -> None:
    images = random_images(4, 32)
    sharp = unnormalize(simclr_views(images, 32, gen(), **FULL_CROP, **NO_COLOR, p_flip=0.0))
    blurred = unnormalize(simclr_views(images, 32, gen(), **FULL_CROP,
                                       **{**NO_COLOR, "p_blur": 1.0}, p_flip=0.0,
                                       sigma=(1.5, 1.5)))
    # radius ceil(3 * 1.5) = 5 -> 11 taps, reflect borders, like torchvision
    want = gaussian_blur(sharp, kernel_size=[11, 11], sigma=[1.5, 1.5])
    torch.testing.assert_close(blurred, want, rtol=0, atol=1e-5)


def test_blur_smooths() -> None:
    images = random_images(8, 32)
    sharp = unnormalize(simclr_views(images, 32, gen(), **FULL_CROP, **NO_COLOR, p_flip=0.0))
    blurred = unnormalize(simclr_views(images, 32, gen(), **FULL_CROP,
                                       **{**NO_COLOR, "p_blur": 1.0}, p_flip=0.0,
                                       sigma=(1.0, 2.0)))

    def roughness(x: torch.Tensor) -> torch.Tensor:
        return (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))

    assert (roughness(blurred) < 0.8 * roughness(sharp)).all()
    # blurring keeps each image's mean (reflect borders, normalised kernel) approximately
    torch.testing.assert_close(blurred.mean((2, 3)), sharp.mean((2, 3)), rtol=0, atol=0.02)


def test_real_photos(tiny_split) -> None:
    images = tiny_split.images
    g = gen(7)
    view1, view2 = simclr_views(images, 32, g), simclr_views(images, 32, g)
    assert view1.shape == view2.shape == (len(images), 3, 32, 32)
    assert torch.isfinite(view1).all() and not torch.allclose(view1, view2)
    train = train_view(images, 48, gen())
    assert train.shape == (len(images), 3, 48, 48)
    # eval at the cache size gives the photos back
    back = unnormalize(eval_view(images, images.shape[-1])) * 255
    torch.testing.assert_close(back, images.float(), rtol=0, atol=1e-3)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        simclr_views(torch.rand(2, 3, 8, 8), 8, gen())
    with pytest.raises(ValueError, match="uint8"):
        eval_view(torch.zeros(2, 8, 8, dtype=torch.uint8), 8)


def test_crop_boxes_follow_random_resized_crop() -> None:
    from catdog.augment import _crop_boxes

    x0, y0, w, h = _crop_boxes(4000, 180, 180, gen(), torch.device("cpu"), (0.08, 1.0),
                               (3 / 4, 4 / 3))
    area = w * h / 180**2
    assert area.min() >= 0.08 - 1e-5 and area.max() <= 1.0 + 1e-5
    assert 0.45 < area.mean() < 0.6  # U(0.08, 1) less the proposals that do not fit
    assert (w / h).min() >= 3 / 4 - 1e-4 and (w / h).max() <= 4 / 3 + 1e-4
    assert (x0 >= 0).all() and (y0 >= 0).all()
    assert (x0 + w <= 180 + 1e-3).all() and (y0 + h <= 180 + 1e-3).all()


def test_float32_inside_autocast() -> None:
    images = random_images(2, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = simclr_views(images, 16, gen()), train_view(images, 16, gen()), eval_view(images, 16)
    assert all(out.dtype == torch.float32 for out in outs)

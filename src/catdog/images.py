"""Decode one image file fully into a fixed-size RGB uint8 array, or say why it cannot be used."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 100_000_000  # larger images are skipped: decoding one would take gigabytes
FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "MPO"}  # formats PIL decodes reliably


class BadImage(Exception):
    """A file that is not a usable image; the message is the reason, for rejected.csv."""


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(path: str | Path, size: int) -> np.ndarray:
    """Decode `path` completely and return it as RGB uint8 [size, size, 3] (resized, aspect not kept).

    Raises BadImage for empty, truncated, corrupt, non-image, unsupported or huge files.
    Grayscale, RGBA, CMYK and palette images are converted to RGB.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImage("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format not in FORMATS:
                    raise BadImage(f"unsupported format {im.format}")
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise BadImage(f"image too large ({w}x{h} > {MAX_PIXELS // 1_000_000} MP)")
                if im.format == "JPEG":
                    im.draft("RGB", (size, size))  # decode big JPEGs at reduced scale: fast, little memory
                im.load()  # full decode: truncated or corrupt data fails here
                rgb = _to_rgb(im)
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
                return np.asarray(rgb, dtype=np.uint8)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImage(f"image too large ({err})".splitlines()[0]) from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BadImage(f"corrupt image: {reason}") from None


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB from any mode; transparent areas are composited on white."""
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")

"""Decoding images: one error type that names the file, and a decoder that never clips or guesses."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np


class ImageReadError(Exception):
    """An image that is missing, unreadable or truncated."""


def load_image(path: Path, draft_size: int | None = None) -> np.ndarray:
    """Decode an image file as an RGB uint8 array (H, W, 3).

    Grayscale, palette and RGBA images are converted to RGB; 16-bit images (PIL modes ``I;16``
    and ``I``) are scaled to 8 bits (65535 -> 255), never clipped. Images larger than PIL's
    decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) are refused before decoding. For JPEGs,
    ``draft_size`` lets libjpeg decode at a reduced scale (1/2, 1/4, 1/8) that is still at least
    that many pixels on the shorter side: several times faster than decoding full size and resizing.

    Raises:
        ImageReadError: missing, unreadable, truncated or too large, naming the file.
    """
    return decode_image(path, str(path), draft_size)


def decode_image(
    source: Path | BinaryIO, name: str, draft_size: int | None = None, gray: bool = False
) -> np.ndarray:
    """Decode an image file or file-like object (encoded bytes) as RGB (H, W, 3) or, with ``gray``, (H, W).

    ``name`` says where the image is in error messages (a path, or a container and key).

    Raises:
        ImageReadError: missing, unreadable, truncated or too large, naming ``name``.
    """
    from PIL import Image, UnidentifiedImageError

    _quiet_bomb_warning()
    try:
        with Image.open(source) as img:
            _refuse_bombs(img, name, Image.MAX_IMAGE_PIXELS)
            if draft_size and img.format == "JPEG":
                w, h = img.size
                scale = draft_size / min(w, h)
                img.draft("L" if gray else "RGB", (math.ceil(w * scale), math.ceil(h * scale)))
            if img.mode in _SIXTEEN_BIT:
                rgb = _sixteen_bit_to_rgb(img)
                return rgb[..., 0] if gray else rgb
            return np.asarray(img.convert("L" if gray else "RGB"))
    except FileNotFoundError:
        raise ImageReadError(f"{name}: image not found") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(
            f"{name}: refused as a decompression bomb ({e}); shrink the image or remove it"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{name}: unreadable image ({decode_failure(e)})") from None


def decode_failure(error: Exception) -> str:
    """PIL's reason an image failed, without the object repr it names an in-memory file by
    (``cannot identify image file <_io.BytesIO object at 0x7f...>``: a different line on each run)."""
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return "not an image format PIL can decode: truncated, empty or not an image"
    return str(error)


_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def _sixteen_bit_to_rgb(img) -> np.ndarray:
    """A 16-bit grayscale image (0..65535) as 8-bit RGB, rounded: 257 -> 1, 65535 -> 255."""
    values = np.asarray(img, dtype=np.float64) if img.mode == "I" else np.asarray(img).astype(np.float64)
    gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def _refuse_bombs(img, path: Path | str, limit: int | None) -> None:
    """Refuse an image over the pixel limit before it is decoded (PIL only warns below 2x the limit)."""
    w, h = img.size
    if limit and w * h > limit:
        raise ImageReadError(
            f"{path}: refused as a possible decompression bomb: {w}x{h} = {w * h} pixels, over "
            f"the limit of {limit}; shrink the image or remove it"
        )


def _quiet_bomb_warning() -> None:
    """PIL warns (on stderr) when it opens an oversized image; :func:`_refuse_bombs` refuses it instead.

    Installed on every call (it only moves one filter to the front): a caller that resets the
    warning filters, as pytest does between tests, would otherwise get the warning back.
    """
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def verify_image(path: Path) -> str | None:
    """Fully decode an image; return what is wrong with it, or None when it is fine."""
    try:
        arr = load_image(path)
    except ImageReadError as e:
        return str(e).split(": ", 1)[1]
    if arr.size == 0:
        return "empty image"
    return None

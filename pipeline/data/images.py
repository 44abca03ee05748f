"""Image IO: the one decoder every stage uses, and atomic encoding; errors name the file.

Decoding policy: :func:`read_image` returns the *stored* pixel grid and ignores the
EXIF Orientation tag.  VOC and COCO boxes (and their ``width``/``height``) refer to that
grid, and torchvision's and pycocotools' loaders read it the same way; applying the tag
would rotate a photo under unrotated boxes.  Pillow is the decoder (no
``exif_transpose``): it gives the same pixels as OpenCV's ``IMREAD_IGNORE_ORIENTATION``
on JPEGs but, unlike OpenCV, refuses a truncated file instead of filling it with grey.

Limits: an image whose header declares more than ``max_pixels`` pixels is refused
before any pixel is decoded (``ImageError`` naming the file), so a decompression bomb
is one bad file, not a crash.  The default, :data:`MAX_PIXELS`, is the size at which
Pillow itself refuses to open an image; a lower limit may be passed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.atomic import atomic_path
from pipeline.errors import PipelineError

MAX_PIXELS = 2 * 89_478_485  # 178,956,970: Pillow's own refusal limit (2 x Image.MAX_IMAGE_PIXELS)
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class ImageError(PipelineError, ValueError):
    """An image file is missing, unreadable, corrupt or over the pixel limit."""


def _open(path: Path, max_pixels: int, failure: str) -> Image.Image:
    """Open lazily (header only) and enforce ``max_pixels``; ImageError naming the file and ``failure``."""
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    try:
        im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: declared image size is over the pixel limit ({exc})") from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(f"{path}: {failure} ({exc})") from exc
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise ImageError(f"{path}: image declares {w}x{h} = {w * h} pixels, over the limit of {max_pixels} "
                         "(possible decompression bomb)")
    return im


def read_image(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to a writable (H, W, 3) uint8 RGB array of the stored pixel grid.

    Fully decodes (a truncated file is an error) and ignores EXIF orientation (module
    docstring).  Raises ImageError naming the file: missing, undecodable, or over ``max_pixels``.
    """
    return np.array(read_pil_image(path, max_pixels))


def read_pil_image(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``path`` as :func:`read_image` does into a loaded RGB Pillow image (4 bytes
    per pixel, no array copy): for reading large images band by band with ``crop``."""
    path = Path(path)
    im = _open(path, max_pixels, "cannot decode image")
    try:
        im.load()  # closes the file of a single-frame image
        if im.mode == "RGB":
            return im
        rgb = im.convert("RGB")
        im.close()
        return rgb
    except _DECODE_ERRORS as exc:
        im.close()
        raise ImageError(f"{path}: cannot decode image ({exc})") from exc


def image_size(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of the stored grid from the header; ImageError naming the file."""
    path = Path(path)
    with _open(path, max_pixels, "cannot read image header") as im:
        return im.size


def write_image(path: str | os.PathLike[str], array: np.ndarray, quality: int = 95) -> None:
    """Encode an (H, W, 3) uint8 RGB array atomically; format from the suffix (JPEG/PNG)."""
    write_pil_image(path, Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="RGB"), quality)


def write_pil_image(path: str | os.PathLike[str], img: Image.Image, quality: int = 95) -> None:
    """Encode an RGB PIL image atomically, as :func:`write_image` (no array copy)."""
    path = Path(path)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    with atomic_path(path) as tmp:
        if fmt == "JPEG":
            img.save(tmp, format=fmt, quality=quality, subsampling=0 if quality >= 95 else 2)
        else:
            img.save(tmp, format=fmt)

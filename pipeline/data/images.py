"""Image IO: decode to RGB uint8 arrays, encode atomically, with errors naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.atomic import atomic_path
from pipeline.errors import PipelineError


class ImageError(PipelineError, ValueError):
    """An image file is missing, unreadable or corrupt."""


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 RGB array; fully decodes to detect truncation."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot decode image ({exc})") from exc


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) from the header; raises ImageError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read image header ({exc})") from exc


def write_image(path: str | os.PathLike[str], array: np.ndarray, quality: int = 95) -> None:
    """Encode an (H, W, 3) uint8 RGB array atomically; format from the suffix (JPEG/PNG)."""
    path = Path(path)
    img = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="RGB")
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    with atomic_path(path) as tmp:
        if fmt == "JPEG":
            img.save(tmp, format=fmt, quality=quality, subsampling=0 if quality >= 95 else 2)
        else:
            img.save(tmp, format=fmt)

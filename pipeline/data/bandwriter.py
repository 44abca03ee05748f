"""Encode an image given as consecutive row bands, atomically, without holding it as an array.

PNG (format from the suffix, as :func:`pipeline.data.images.write_image`) is encoded
progressively: each band is filtered (per row the PNG filter None/Sub/Up/Paeth with the
smallest sum of absolute values, libpng's heuristic) and fed to one zlib stream, so memory
is one band whatever the height.  JPEG has no streaming encoder in Pillow or OpenCV:
bands are pasted into one Pillow image (4 bytes per pixel) and encoded as ``write_image``
does, which still saves the (H, W, 3) array and its copy that ``write_image`` needs.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from pipeline.atomic import atomic_path
from pipeline.data.images import ImageError, write_pil_image

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_ROWS = 32  # rows filtered at once: bounds the int16 temporaries to ~10 of 32 x 3W


def _chunk(f: BinaryIO, kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))


def _filter(rows: np.ndarray, prev: np.ndarray) -> bytes:
    """PNG-filter (n, 3W) uint8 rows whose predecessor row is ``prev`` (3W,); returns the
    scanlines, each led by its filter-type byte (PNG spec section 9, bpp 3)."""
    x = rows.astype(np.int16)
    up = np.concatenate([prev[None].astype(np.int16), x[:-1]])
    left = np.zeros_like(x)
    left[:, 3:] = x[:, :-3]
    upleft = np.zeros_like(x)
    upleft[:, 3:] = up[:, :-3]
    pa, pb, pc = np.abs(up - upleft), np.abs(left - upleft), np.abs(left + up - 2 * upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    candidates = np.stack([x, x - left, x - up, x - paeth]).astype(np.uint8)  # types 0, 1, 2, 4 (mod 256)
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)  # (4, n)
    best = cost.argmin(axis=0)
    chosen = candidates[best, np.arange(len(rows))]
    types = np.array([0, 1, 2, 4], np.uint8)[best]
    return np.concatenate([types[:, None], chosen], axis=1).tobytes()


def _write_png(f: BinaryIO, width: int, height: int, bands: Iterable[np.ndarray], level: int) -> int:
    """Stream a truecolour 8-bit PNG; returns the number of rows written."""
    f.write(_PNG_SIGNATURE)
    _chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    comp = zlib.compressobj(level)
    prev = np.zeros(3 * width, np.uint8)
    done = 0
    for band in bands:
        flat = band.reshape(len(band), 3 * width)
        for i in range(0, len(flat), _FILTER_ROWS):
            rows = flat[i:i + _FILTER_ROWS]
            data = comp.compress(_filter(rows, prev))
            if data:
                _chunk(f, b"IDAT", data)
            prev = rows[-1]
        done += len(band)
    _chunk(f, b"IDAT", comp.flush())
    _chunk(f, b"IEND", b"")
    return done


def _checked(path: Path, width: int, height: int, bands: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    """The bands, each checked to be (n, width, 3) uint8 and to stay within ``height`` rows."""
    top = 0
    for band in bands:
        if band.ndim != 3 or band.shape[1:] != (width, 3) or band.dtype != np.uint8:
            raise ImageError(f"{path}: band {band.shape} {band.dtype} at row {top} is not (n, {width}, 3) uint8")
        top += len(band)
        if top > height:
            raise ImageError(f"{path}: bands give more than the image's {height} rows")
        yield band


def write_image_bands(
    path: str | os.PathLike[str],
    size: tuple[int, int],
    bands: Iterable[np.ndarray],
    quality: int = 95,
    png_level: int = 6,
) -> None:
    """Encode the ``size`` (W, H) image whose rows ``bands`` gives top to bottom, atomically.

    Raises ImageError naming ``path`` when the bands do not make exactly H rows of width W;
    the target is then left untouched.
    """
    path = Path(path)
    width, height = size
    bands = _checked(path, width, height, bands)
    if path.suffix.lower() != ".png":
        canvas = Image.new("RGB", (width, height))
        top = 0
        for band in bands:
            canvas.paste(Image.fromarray(band), (0, top))
            top += len(band)
        if top != height:
            raise ImageError(f"{path}: bands end at row {top} of {height}")
        write_pil_image(path, canvas, quality)
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        top = _write_png(f, width, height, bands, png_level)
        if top != height:
            raise ImageError(f"{path}: bands end at row {top} of {height}")

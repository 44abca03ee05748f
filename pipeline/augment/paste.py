"""Array-level building blocks of copy-paste: crop, rescale, place without overlap, blend.

Boxes are float32 xyxy pixels (:mod:`pipeline.data.boxes`); patches are box crops
(VOC has no instance masks), so a pasted object carries its rectangular background.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from pipeline.data.degrade import resize_image


def crop_box(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Pixel crop covering ``box`` (floor/ceil to whole pixels, clipped): (patch (h, w, 3), (x0, y0, x1, y1))."""
    h, w = image.shape[:2]
    x0 = min(max(int(math.floor(box[0])), 0), w - 1)
    y0 = min(max(int(math.floor(box[1])), 0), h - 1)
    x1 = max(min(int(math.ceil(box[2])), w), x0 + 1)
    y1 = max(min(int(math.ceil(box[3])), h), y0 + 1)
    return image[y0:y1, x0:x1].copy(), (x0, y0, x1, y1)


def rescale_patch(patch: np.ndarray, factor: float) -> np.ndarray:
    """Resize a patch by ``factor`` (each side rounded, at least 1 px); bilinear (PIL, antialiased when shrinking)."""
    h, w = patch.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size == (w, h):
        return patch.copy()
    return resize_image(patch, size, "bilinear", antialias=True)


def intersects(box: np.ndarray, others: np.ndarray) -> bool:
    """True if ``box`` (4,) shares any area with one of ``others`` (N, 4); touching edges do not count."""
    if len(others) == 0:
        return False
    iw = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    ih = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    return bool(((iw > 0) & (ih > 0)).any())


def find_free_position(
    size: tuple[int, int],
    image_size: tuple[int, int],
    occupied: np.ndarray,
    rng: np.random.Generator,
    max_attempts: int,
) -> np.ndarray | None:
    """Sample integer top-left corners uniformly until a ``size = (w, h)`` box fits fully inside
    the ``image_size = (W, H)`` image without intersecting ``occupied`` (N, 4).

    Returns the float32 xyxy box, or None after ``max_attempts`` failures (or if it cannot fit).
    """
    w, h = size
    W, H = image_size
    if w > W or h > H:
        return None
    for _ in range(max_attempts):
        x = int(rng.integers(0, W - w + 1))
        y = int(rng.integers(0, H - h + 1))
        box = np.array([x, y, x + w, y + h], np.float32)
        if not intersects(box, occupied):
            return box
    return None


def feather_alpha(h: int, w: int, radius: float) -> np.ndarray:
    """(h, w) alpha in [0, 1]: a box of ones blurred by a Gaussian (sigma = ``radius``) against a zero
    surround. The outermost pixels get about Phi(0.5 / radius) (0.69 at radius 1), corners about its
    square, and pixels more than ~3 radii inside stay 1."""
    return gaussian_filter(np.ones((h, w), np.float64), sigma=radius, mode="constant", cval=0.0)


def paste(image: np.ndarray, patch: np.ndarray, box: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Write ``patch`` (h, w, 3) into ``image`` at integer xyxy ``box`` in place; ``alpha`` (h, w) blends."""
    x0, y0 = int(box[0]), int(box[1])
    h, w = patch.shape[:2]
    region = image[y0 : y0 + h, x0 : x0 + w]
    if alpha is None:
        region[...] = patch
        return
    a = alpha[..., None]
    region[...] = np.clip(np.rint(a * patch + (1.0 - a) * region), 0, 255).astype(np.uint8)

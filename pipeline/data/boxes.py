"""Box conventions and conversions, in one place.

Boxes are ``(xmin, ymin, xmax, ymax)`` in pixels of the image they belong to
(continuous coordinates: a box covering pixel columns 0..9 is ``xmin=0,
xmax=10``): float32 in tensors and model code, float64 for ground truth on its
way to evaluation, so metrics equal pycocotools on the same boxes.  The
conversions below keep float64 input float64 and give float32 otherwise.  VOC
XML stores 1-based inclusive pixel indices, COCO stores ``(x, y, w, h)``.
"""

from __future__ import annotations

import numpy as np


def voc_to_xyxy(xmin: float, ymin: float, xmax: float, ymax: float) -> tuple[float, float, float, float]:
    """VOC 1-based inclusive pixel indices -> continuous 0-based xyxy."""
    return xmin - 1.0, ymin - 1.0, float(xmax), float(ymax)


def xyxy_to_voc(box: np.ndarray) -> np.ndarray:
    """Inverse of :func:`voc_to_xyxy` (for writing VOC XML)."""
    out = np.asarray(box, dtype=np.float64).copy()
    out[..., :2] += 1.0
    return out


def _boxes(boxes: np.ndarray) -> np.ndarray:
    """(n, 4) array: float64 stays float64 (ground truth), anything else becomes float32."""
    b = np.asarray(boxes)
    return b.reshape(-1, 4) if b.dtype == np.float64 else b.astype(np.float32).reshape(-1, 4)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = _boxes(boxes)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    b = _boxes(boxes)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)


def scale_boxes(boxes: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """Scale xyxy boxes by ``sx`` horizontally and ``sy`` (default ``sx``) vertically."""
    sy = sx if sy is None else sy
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    factor = np.array([sx, sy, sx, sy], dtype=np.float32)
    return b * factor


def areas(boxes: np.ndarray) -> np.ndarray:
    b = _boxes(boxes)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


# COCO size buckets (area in pixels of the evaluated image).
SMALL_MAX_AREA = 32.0**2
MEDIUM_MAX_AREA = 96.0**2


def size_bucket(area: np.ndarray) -> np.ndarray:
    """0 = small (< 32^2), 1 = medium (< 96^2), 2 = large, per COCO convention."""
    a = np.asarray(area, dtype=np.float64)
    return np.where(a < SMALL_MAX_AREA, 0, np.where(a < MEDIUM_MAX_AREA, 1, 2))

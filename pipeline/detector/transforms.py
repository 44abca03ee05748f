"""SSD training augmentation and the eval transform, as named recipes.

Every transform maps ``(image, boxes, labels, rng) -> (image, boxes, labels)`` with
``image`` an (H, W, 3) RGB array, ``boxes`` (n, 4) float32 xyxy **pixels** of that
image, ``labels`` (n,) int64 and ``rng`` a :class:`numpy.random.Generator`, so one
seeded generator makes a whole pipeline reproducible.  The recipe ends by resizing
to ``size x size`` and normalising boxes to [0, 1].

The ``ssd`` recipe follows Liu et al. 2016, "SSD: Single Shot MultiBox Detector",
Sec. 2.2 "Data augmentation" and the reference implementations (ssd.pytorch
``augmentations.py``, torchvision references ``presets.py`` ``data_augmentation="ssd"``):
photometric distortion -> zoom out (expand, ratio up to 4, mean fill) -> min-IoU
random crop -> horizontal flip -> resize.  Config names a recipe (``ssd`` | ``none``),
never a transform list (STYLE.md, "named recipes").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Sample = tuple[np.ndarray, np.ndarray, np.ndarray]
Transform = Callable[[np.ndarray, np.ndarray, np.ndarray, np.random.Generator], Sample]

RECIPES = ("ssd", "none")
# ImageNet mean in RGB uint8: the fill of the zoom-out canvas (the network sees ~0 there).
MEAN_RGB = (124, 116, 104)


def _iou_one_to_many(patch: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy ``patch`` (4,) with ``boxes`` (n, 4)."""
    lt = np.maximum(patch[:2], boxes[:, :2])
    rb = np.minimum(patch[2:], boxes[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    area_p = (patch[2] - patch[0]) * (patch[3] - patch[1])
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area_p + area_b - inter, 1e-9)


@dataclass(frozen=True)
class PhotometricDistort:
    """SSD photometric distortion on float RGB, each step with probability ``p``.

    Order as in SSD (ssd.pytorch ``PhotometricDistort``): brightness, then with
    probability 1/2 contrast first or last around (saturation, hue), then a random
    channel permutation.
    """

    brightness_delta: float = 32.0
    contrast: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (0.5, 1.5)
    hue_delta: float = 18.0  # degrees
    p: float = 0.5

    def __call__(self, image, boxes, labels, rng):
        img = image.astype(np.float32)
        if rng.random() < self.p:
            img += rng.uniform(-self.brightness_delta, self.brightness_delta)
        contrast_first = rng.random() < 0.5
        if contrast_first:
            img = self._contrast(img, rng)
        img = self._hsv(img, rng)
        if not contrast_first:
            img = self._contrast(img, rng)
        if rng.random() < self.p:
            img = img[:, :, rng.permutation(3)]
        return np.clip(img, 0, 255).round().astype(np.uint8), boxes, labels

    def _contrast(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.p:
            img = img * rng.uniform(*self.contrast)
        return img

    def _hsv(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        do_sat = rng.random() < self.p
        sat = rng.uniform(*self.saturation)
        do_hue = rng.random() < self.p
        hue = rng.uniform(-self.hue_delta, self.hue_delta)
        if not (do_sat or do_hue):
            return img
        # cv2 float HSV: H in [0, 360), S in [0, 1], V = max(R, G, B) (scale kept).
        hsv = cv2.cvtColor(np.clip(img, 0, 255) / 255.0, cv2.COLOR_RGB2HSV)
        if do_sat:
            hsv[:, :, 1] = np.clip(hsv[:, :, 1] * sat, 0, 1)
        if do_hue:
            hsv[:, :, 0] = np.mod(hsv[:, :, 0] + hue, 360.0)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0


@dataclass(frozen=True)
class Expand:
    """Zoom out: place the image at a random spot of a canvas ``ratio`` x larger
    (ratio ~ U(1, max_ratio)) filled with ``fill``; small objects get smaller (SSD Sec. 3.6)."""

    max_ratio: float = 4.0
    p: float = 0.5
    fill: tuple[int, int, int] = MEAN_RGB

    def __call__(self, image, boxes, labels, rng):
        if rng.random() >= self.p:
            return image, boxes, labels
        h, w = image.shape[:2]
        ratio = rng.uniform(1.0, self.max_ratio)
        ch, cw = int(h * ratio), int(w * ratio)
        top = int(rng.uniform(0, ch - h))
        left = int(rng.uniform(0, cw - w))
        canvas = np.empty((ch, cw, 3), np.uint8)
        canvas[:] = np.asarray(self.fill, np.uint8)
        canvas[top : top + h, left : left + w] = image
        shift = np.array([left, top, left, top], np.float32)
        return canvas, boxes + shift, labels


@dataclass(frozen=True)
class MinIoURandomCrop:
    """SSD patch sampling: pick a mode from ``(None, 0.1, 0.3, 0.5, 0.7, 0.9, 0.0)``
    (None = keep the whole image, 0.0 = any patch), then try up to ``trials`` patches
    with sides in [min_scale, 1] of the image and aspect ratio in [1/2, 2] until one
    has IoU >= the mode with an object whose centre lies inside it.  Objects whose
    centres lie in the patch are kept, clipped to it; the others are dropped.
    """

    min_ious: tuple[float | None, ...] = (None, 0.1, 0.3, 0.5, 0.7, 0.9, 0.0)
    min_scale: float = 0.3
    aspect: tuple[float, float] = (0.5, 2.0)
    trials: int = 50

    def __call__(self, image, boxes, labels, rng):
        h, w = image.shape[:2]
        while True:  # as in ssd.pytorch: resample the mode until a patch is found
            mode = self.min_ious[int(rng.integers(len(self.min_ious)))]
            if mode is None:
                return image, boxes, labels
            for _ in range(self.trials):
                cw = rng.uniform(self.min_scale * w, w)
                chh = rng.uniform(self.min_scale * h, h)
                if not self.aspect[0] <= cw / chh <= self.aspect[1]:
                    continue
                left = rng.uniform(0, w - cw)
                top = rng.uniform(0, h - chh)
                patch = np.array([left, top, left + cw, top + chh], np.float32).round()
                if patch[2] - patch[0] < 1 or patch[3] - patch[1] < 1:
                    continue
                centres = (boxes[:, :2] + boxes[:, 2:]) / 2
                inside = (
                    (centres[:, 0] > patch[0])
                    & (centres[:, 1] > patch[1])
                    & (centres[:, 0] < patch[2])
                    & (centres[:, 1] < patch[3])
                )
                if len(boxes):
                    if not inside.any():
                        continue
                    if _iou_one_to_many(patch, boxes[inside]).max() < mode:
                        continue
                x0, y0, x1, y1 = (int(v) for v in patch)
                crop = image[y0:y1, x0:x1]
                kept = boxes[inside].copy()
                kept[:, :2] = np.maximum(kept[:, :2], patch[:2])
                kept[:, 2:] = np.minimum(kept[:, 2:], patch[2:])
                kept -= np.array([x0, y0, x0, y0], np.float32)
                return crop, kept, labels[inside]


@dataclass(frozen=True)
class HorizontalFlip:
    p: float = 0.5

    def __call__(self, image, boxes, labels, rng):
        if rng.random() >= self.p:
            return image, boxes, labels
        w = image.shape[1]
        flipped = boxes.copy()
        flipped[:, 0] = w - boxes[:, 2]
        flipped[:, 2] = w - boxes[:, 0]
        return image[:, ::-1], flipped, labels


@dataclass(frozen=True)
class ResizeNormalize:
    """Resize to ``size x size`` (aspect not kept, as SSD) and map boxes to [0, 1];
    boxes narrower or shorter than ``min_size`` pixels of the *input* are dropped."""

    size: int
    min_size: float = 1.0

    def __call__(self, image, boxes, labels, rng):
        h, w = image.shape[:2]
        if (h, w) != (self.size, self.size):
            image = cv2.resize(np.ascontiguousarray(image), (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = (wh >= self.min_size).all(1)
        norm = boxes[keep] / np.array([w, h, w, h], np.float32)
        return np.ascontiguousarray(image), np.clip(norm, 0.0, 1.0).astype(np.float32), labels[keep]


@dataclass(frozen=True)
class Compose:
    transforms: Sequence[Transform]

    def __call__(self, image, boxes, labels, rng):
        for t in self.transforms:
            image, boxes, labels = t(image, boxes, labels, rng)
        return image, boxes, labels


def ssd_train_transform(size: int, max_expand: float = 4.0) -> Compose:
    """The SSD augmentation recipe (Liu et al. 2016 Sec. 2.2 + Sec. 3.6 zoom out)."""
    return Compose(
        (
            PhotometricDistort(),
            Expand(max_ratio=max_expand),
            MinIoURandomCrop(),
            HorizontalFlip(),
            ResizeNormalize(size),
        )
    )


def eval_transform(size: int) -> Compose:
    """Resize + normalise boxes only (evaluation, and the ``none`` training recipe)."""
    return Compose((ResizeNormalize(size),))


def build_transform(recipe: str, size: int) -> Compose:
    """Named training recipe: ``ssd`` (full SSD augmentation) or ``none`` (resize only)."""
    if recipe == "ssd":
        return ssd_train_transform(size)
    if recipe == "none":
        return eval_transform(size)
    raise ValueError(f"unknown augmentation recipe {recipe!r} (known: {list(RECIPES)})")

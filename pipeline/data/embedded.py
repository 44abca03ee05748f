"""A small, deterministic, offline small-object detection dataset in genuine VOC layout.

Design (so that a detector learns something measurable and 4x downsampling hurts):

* Five classes that differ in *shape*: ``disc`` (filled circle), ``ring`` (outlined
  circle), ``square`` (filled square), ``triangle`` (filled triangle), ``cross`` (plus
  sign).  ``class_colour_share`` of the objects (default half) take their class's hue band
  (red, yellow, green, blue, magenta; +-18 deg), the others a uniformly random hue, with random
  saturation/value: colour is a cue but only shape identifies every object, and
  shape is what 4x downsampling destroys.  A third of the filled objects carry a
  stripe texture, every object a 1-px darker outline with probability 0.5.
* Sizes: most objects have a side drawn log-uniformly in ``object_size`` (default
  [12, 48] px: 3-12 px after 4x downsampling, so part of their shape survives and SR
  has something to recover); ``tiny_fraction`` of them are drawn in [8, 12) px instead.
* Polygons are rotated by up to +-20 deg with +-15 % aspect jitter; the box is the
  tight box of the drawn geometry, so it is exact.
* Background: a random linear colour gradient + low-frequency noise (bilinearly
  upsampled 8x8 grid) + per-pixel Gaussian noise (``noise_sigma``), plus distractors
  that are not classes: grey/desaturated strokes (random polylines) and elongated
  low-saturation ellipses.
* Crowds: ``crowd_fraction`` of the objects stand in rows of ``crowd_size`` same-class,
  same-size objects (bottles on a shelf), neighbours overlapping with a box IoU drawn in
  [0.15, ``crowd_max_iou``]; later ones are drawn over earlier ones (occlusion; boxes
  stay the full extent, as VOC's).  Hard NMS at IoU 0.45 suppresses true neighbours
  there, Soft-NMS keeps them with a lower score.  Every other pair of objects overlaps
  by IoU <= 0.1, and every object lies fully inside the image.

``scene: large`` renders aerial-like scenes instead (:class:`LargeScene`): 1,500-3,000 px
images holding hundreds of 6-24 px objects, a share of them packed in crowds (clusters
with a Gaussian spread of a few object sizes, still IoU <= 0.1), on the same
background and with more distractors in proportion to the area.  A detector that
warps such an image to 300 px sees its objects at 1-5 px; sliced inference
(:mod:`pipeline.slicing`) sees them at native scale.

Written as ``<root>/VOCdevkit/<NAME>/{JPEGImages/*.jpg, Annotations/*.xml,
ImageSets/Main/{train,test,trainval}.txt}`` with standard VOC XML (1-based
inclusive pixel indices).  Image ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.atomic import atomic_dir, write_text
from pipeline.config import require
from pipeline.data.images import write_image

EMBEDDED_CLASSES: tuple[str, ...] = ("disc", "ring", "square", "triangle", "cross")
# Centre of each class's hue band, in degrees.
_HUE = {"disc": 0.0, "ring": 55.0, "square": 120.0, "triangle": 220.0, "cross": 300.0}
DATASET_NAME = "SOD5"
_SUB = 4  # fixed-point subpixel bits for cv2 drawing
_MAX_IOU = 0.1


@dataclass(frozen=True)
class LargeScene:
    """Params ``data.embedded.large``: the aerial-like scenes of ``scene: large``.

    Attributes:
        image_size: [min, max] side length in px; width and height drawn independently.
        objects_per_image: [min, max] objects per image (inclusive; fewer when no free place is found).
        object_size: [min, max] object side in px, drawn log-uniformly.
        crowds: [min, max] crowd centres per image.
        crowd_fraction: share of objects placed around a crowd centre.
        crowd_spread: standard deviation of a crowd member's offset from its centre, px.
    """

    image_size: tuple[int, int] = (1500, 3000)
    objects_per_image: tuple[int, int] = (150, 400)
    object_size: tuple[float, float] = (6.0, 24.0)
    crowds: tuple[int, int] = (2, 6)
    crowd_fraction: float = 0.4
    crowd_spread: float = 40.0

    def validate(self, prefix: str) -> None:
        lo, hi = self.image_size
        require(256 <= lo <= hi <= 4096, f"{prefix}.image_size", "need 256 <= min <= max <= 4096")
        lo, hi = self.objects_per_image
        require(0 <= lo <= hi <= 5000, f"{prefix}.objects_per_image", "need 0 <= min <= max <= 5000")
        lo, hi = self.object_size
        require(4 <= lo <= hi <= 64, f"{prefix}.object_size", "need 4 <= min <= max <= 64 px")
        lo, hi = self.crowds
        require(1 <= lo <= hi, f"{prefix}.crowds", "need 1 <= min <= max")
        require(0.0 <= self.crowd_fraction <= 1.0, f"{prefix}.crowd_fraction", "must be in [0, 1]")
        require(self.crowd_spread > 0, f"{prefix}.crowd_spread", "must be > 0")


@dataclass(frozen=True)
class EmbeddedConfig:
    """Params ``data.embedded``: size of the generated dataset.

    Attributes:
        num_train, num_test: images per split.
        image_size: [min, max] side length in px; width and height drawn independently.
        objects_per_image: [min, max] objects per image (inclusive).
        object_size: [min, max] side in px of most objects, drawn log-uniformly.
        tiny_fraction: share of objects drawn in [8, object_size[0]) px instead.
        class_colour_share: share of objects whose hue comes from their class's band (the
            rest take any hue): how much colour alone tells the class, which 4x keeps.
        noise_sigma: per-pixel Gaussian background noise, grey levels (an SR model cannot
            restore it, so it caps the PSNR gain of any SR over bicubic).
        crowd_fraction: expected share of objects placed in overlapping same-class rows.
        crowd_size: [min, max] objects per row.
        crowd_max_iou: the largest box IoU of two neighbours in a row.
        distractors: [min, max] non-class strokes/blobs per image.
        jpeg_quality: JPEG quality of the written images.
        scene: ``default`` (the fields above) or ``large`` (:class:`LargeScene` replaces
            image_size, objects_per_image, object_size, tiny_fraction and the crowd fields;
            distractors scale with the area).
        large: the large-scene settings.
    """

    num_train: int = 200
    num_test: int = 60
    image_size: tuple[int, int] = (300, 400)
    objects_per_image: tuple[int, int] = (3, 12)
    object_size: tuple[float, float] = (12.0, 48.0)
    tiny_fraction: float = 0.2
    class_colour_share: float = 0.5
    noise_sigma: float = 3.0
    crowd_fraction: float = 0.4
    crowd_size: tuple[int, int] = (2, 6)
    crowd_max_iou: float = 0.5
    distractors: tuple[int, int] = (4, 10)
    jpeg_quality: int = 90
    scene: Literal["default", "large"] = "default"
    large: LargeScene = field(default_factory=LargeScene)

    def validate(self, prefix: str) -> None:
        require(self.num_train >= 1, f"{prefix}.num_train", "must be >= 1")
        require(self.num_test >= 1, f"{prefix}.num_test", "must be >= 1")
        lo, hi = self.image_size
        require(128 <= lo <= hi <= 2048, f"{prefix}.image_size", "need 128 <= min <= max <= 2048")
        lo, hi = self.objects_per_image
        require(0 <= lo <= hi <= 64, f"{prefix}.objects_per_image", "need 0 <= min <= max <= 64")
        lo, hi = self.object_size
        require(8 <= lo <= hi <= 256, f"{prefix}.object_size", "need 8 <= min <= max <= 256 px")
        require(0.0 <= self.tiny_fraction <= 1.0, f"{prefix}.tiny_fraction", "must be in [0, 1]")
        require(0.0 <= self.class_colour_share <= 1.0, f"{prefix}.class_colour_share", "must be in [0, 1]")
        require(0.0 <= self.noise_sigma <= 64.0, f"{prefix}.noise_sigma", "must be in [0, 64]")
        require(0.0 <= self.crowd_fraction <= 1.0, f"{prefix}.crowd_fraction", "must be in [0, 1]")
        lo, hi = self.crowd_size
        require(2 <= lo <= hi <= 16, f"{prefix}.crowd_size", "need 2 <= min <= max <= 16")
        require(0.15 <= self.crowd_max_iou <= 0.9, f"{prefix}.crowd_max_iou", "must be in [0.15, 0.9]")
        lo, hi = self.distractors
        require(0 <= lo <= hi, f"{prefix}.distractors", "need 0 <= min <= max")
        require(1 <= self.jpeg_quality <= 100, f"{prefix}.jpeg_quality", "must be in [1, 100]")
        require(self.scene in ("default", "large"), f"{prefix}.scene", f"must be default | large, got {self.scene!r}")
        self.large.validate(f"{prefix}.large")


def _hsv_to_rgb(h_deg: float, s: float, v: float) -> np.ndarray:
    hsv = np.array([[[h_deg % 360.0 / 2.0, s * 255.0, v * 255.0]]], np.float32).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)


def _background(rng: np.random.Generator, h: int, w: int, noise_sigma: float = 8.0) -> np.ndarray:
    """Gradient + low-frequency noise + pixel noise, float32 (H, W, 3) in [0, 255]."""
    c0, c1 = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    ang = rng.uniform(0, 2 * math.pi)
    t = (np.arange(w, dtype=np.float32)[None, :] * math.cos(ang)
         + np.arange(h, dtype=np.float32)[:, None] * math.sin(ang))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = c0.astype(np.float32), c1.astype(np.float32)
    img = c0 + (c1 - c0) * t[..., None]
    low = rng.normal(0, 25, (8, 8, 3)).astype(np.float32)
    img += cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(noise_sigma)
    return img


def _distractors(rng: np.random.Generator, img: np.ndarray, n: int) -> None:
    h, w = img.shape[:2]
    for _ in range(n):
        grey = rng.uniform(30, 230)
        colour = tuple(float(np.clip(grey + rng.normal(0, 15), 0, 255)) for _ in range(3))
        if rng.random() < 0.5:  # polyline stroke
            pts = np.cumsum(rng.normal(0, 25, (int(rng.integers(2, 6)), 2)), 0) + rng.uniform((0, 0), (w, h))
            cv2.polylines(img, [pts.astype(np.int32).reshape(-1, 1, 2)], False, colour,
                          int(rng.integers(1, 4)), cv2.LINE_AA)
        else:  # elongated blob
            axes = (int(rng.uniform(6, 40)), int(rng.uniform(2, 8)))
            centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)


def _polygon(cls: str, rng: np.random.Generator, side: float) -> np.ndarray:
    """Unrotated outline centred at 0 with extent ~``side``; (K, 2) float."""
    r = side / 2.0
    if cls == "square":
        return np.array([[-r, -r], [r, -r], [r, r], [-r, r]])
    if cls == "triangle":
        return np.array([[0.0, -r], [r, r], [-r, r]])
    if cls == "cross":
        a = r * rng.uniform(0.3, 0.45)
        return np.array([[-a, -r], [a, -r], [a, -a], [r, -a], [r, a], [a, a], [a, r], [-a, r],
                         [-a, a], [-r, a], [-r, -a], [-a, -a]])
    # disc / ring: a fine polygon, so rotation and aspect jitter act uniformly on all shapes.
    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _iou(a: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Box IoU of ``a`` (4,) with each of ``boxes`` (K, 4), xyxy."""
    ix = np.maximum(0.0, np.minimum(a[2], boxes[:, 2]) - np.maximum(a[0], boxes[:, 0]))
    iy = np.maximum(0.0, np.minimum(a[3], boxes[:, 3]) - np.maximum(a[1], boxes[:, 1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _free(a: np.ndarray, boxes: np.ndarray, max_iou: float = _MAX_IOU) -> bool:
    """True when box ``a`` overlaps every one of ``boxes`` (K, 4) by IoU <= ``max_iou``."""
    return not boxes.size or bool((_iou(a, boxes) <= max_iou).all())


def _draw_object(rng: np.random.Generator, img: np.ndarray, cls: str, pts: np.ndarray, side: float,
                 class_colour_share: float) -> None:
    """Alpha-blend one anti-aliased object into ``img`` (float32, in place), working on its ROI only;
    with probability ``class_colour_share`` its hue comes from its class's band, else any hue."""
    h, w = img.shape[:2]
    x0, y0 = (max(0, int(v) - 2) for v in pts.min(0))
    x1, y1 = min(w, int(pts[:, 0].max()) + 3), min(h, int(pts[:, 1].max()) + 3)
    roi = img[y0:y1, x0:x1]
    local = pts - np.array([x0, y0])
    hue = _HUE[cls] + rng.uniform(-18, 18) if rng.random() < class_colour_share else rng.uniform(0, 360)
    colour = _hsv_to_rgb(hue, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
    fp = np.round(local * (1 << _SUB)).astype(np.int32).reshape(-1, 1, 2)
    mask = np.zeros(roi.shape[:2], np.float32)
    cv2.fillPoly(mask, [fp], 1.0, cv2.LINE_AA, _SUB)
    if cls == "ring":
        thick = max(2, int(round(side * rng.uniform(0.12, 0.22))))
        # Hollow the disc from inside, so the tight box stays the outline's box.
        centre = local.mean(0)
        inner = centre + (local - centre) * (1 - 2 * thick / max(side, 1.0))
        ip = np.round(inner * (1 << _SUB)).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(mask, [ip], 0.0, cv2.LINE_AA, _SUB)
    layer = np.broadcast_to(colour.astype(np.float32), roi.shape).copy()
    if cls != "ring" and rng.random() < 1 / 3:  # stripe texture
        yy, xx = np.mgrid[0 : roi.shape[0], 0 : roi.shape[1]]
        ang, period = rng.uniform(0, math.pi), rng.uniform(3, 6)
        stripes = 0.75 + 0.25 * np.sign(np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * 2 * math.pi / period))
        layer *= stripes[..., None].astype(np.float32)
    if rng.random() < 0.5:  # darker 1-px outline
        edge = np.zeros(roi.shape[:2], np.float32)
        cv2.polylines(edge, [fp], True, 1.0, 1, cv2.LINE_AA, _SUB)
        layer *= (1 - 0.4 * edge * mask)[..., None]
    roi *= (1 - mask)[..., None]
    roi += layer * mask[..., None]


def _object_shape(rng: np.random.Generator, cls: str, side: float) -> np.ndarray:
    """Outline of one object (rotated, aspect-jittered) whose tight box is centred at 0 with longer side ``side``."""
    ang = math.radians(rng.uniform(-20, 20))
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    aspect = rng.uniform(0.85, 1.15)
    shape = _polygon(cls, rng, side) * np.array([aspect, 1 / aspect])
    shape = shape @ rot.T
    # Scale so the tight box's longer side equals ``side`` (keeps the size law exact).
    ext = shape.max(0) - shape.min(0)
    shape *= side / float(ext.max())
    shape -= (shape.min(0) + shape.max(0)) / 2  # centre the tight box at the origin
    return shape


def _place(rng: np.random.Generator, img: np.ndarray, objects: list[tuple[str, np.ndarray]], cls: str,
           side: float, centre: Callable[[np.ndarray], np.ndarray], class_colour_share: float) -> None:
    """Draw ``cls`` at the first of 20 ``centre(extent)`` draws that keeps IoU <= 0.1 with ``objects``."""
    shape = _object_shape(rng, cls, side)
    ext = shape.max(0) - shape.min(0)
    boxes = np.array([b for _, b in objects]).reshape(-1, 4)
    for _attempt in range(20):
        pts = shape + centre(ext)
        box = np.array([*pts.min(0), *pts.max(0)])
        if _free(box, boxes):
            _draw_object(rng, img, cls, pts, side, class_colour_share)
            objects.append((cls, box))
            return


def _uniform_centre(rng: np.random.Generator, w: int, h: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda ext: rng.uniform(ext / 2 + 1, np.array([w, h]) - ext / 2 - 1)


def _crowd_centre(rng: np.random.Generator, w: int, h: int, at: np.ndarray,
                  spread: float) -> Callable[[np.ndarray], np.ndarray]:
    lo, hi = np.array([0.0, 0.0]), np.array([w, h], np.float64)
    return lambda ext: np.clip(at + rng.normal(0.0, spread, 2), lo + ext / 2 + 1, hi - ext / 2 - 1)


def _random_class(rng: np.random.Generator) -> str:
    return EMBEDDED_CLASSES[int(rng.integers(len(EMBEDDED_CLASSES)))]


def _side(rng: np.random.Generator, cfg: EmbeddedConfig) -> float:
    """An object side (px): log-uniform in ``object_size``, or in [8, object_size[0]) for the tiny share."""
    lo, hi = cfg.object_size
    if rng.random() < cfg.tiny_fraction:
        lo, hi = min(8.0, lo), lo
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _place_row(rng: np.random.Generator, img: np.ndarray, objects: list[tuple[str, np.ndarray]],
               cfg: EmbeddedConfig, count: int) -> None:
    """Draw a crowd: ``count`` same-class, same-size objects in a (slightly tilted) row whose
    neighbours overlap by a box IoU in about [0.15, ``crowd_max_iou``]; all or nothing (20 tries)."""
    h, w = img.shape[:2]
    cls, side = _random_class(rng), _side(rng, cfg)
    shapes = [_object_shape(rng, cls, side * rng.uniform(0.95, 1.05)) for _ in range(count)]
    width = float(np.mean([s[:, 0].max() - s[:, 0].min() for s in shapes]))
    iou = rng.uniform(0.15, cfg.crowd_max_iou)
    step = width * (1 - iou) / (1 + iou)  # two equal boxes shifted by `step` along x have this IoU
    tilt = rng.uniform(-0.1, 0.1)
    direction = np.array([math.cos(tilt), math.sin(tilt)])
    offsets = [(j - (count - 1) / 2) * step * direction + rng.normal(0.0, 0.02 * side, 2) for j in range(count)]
    others = np.array([b for _, b in objects]).reshape(-1, 4)
    for _attempt in range(20):
        centre = rng.uniform((0, 0), (w, h))
        rows = [shape + centre + off for shape, off in zip(shapes, offsets, strict=True)]
        boxes = np.array([[*pts.min(0), *pts.max(0)] for pts in rows])
        inside = (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        if not inside or not all(_free(b, others) for b in boxes):
            continue
        if not all(_free(boxes[i], boxes[i + 1 :], cfg.crowd_max_iou) for i in range(count - 1)):
            continue
        for pts, box in zip(rows, boxes, strict=True):
            _draw_object(rng, img, cls, pts, side, cfg.class_colour_share)
            objects.append((cls, box))
        return


def generate_image(seed: int, index: int, cfg: EmbeddedConfig) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Render image ``index``: (H, W, 3) uint8 RGB and [(class, xyxy float box)]."""
    if cfg.scene == "large":
        return _generate_large(seed, index, cfg)
    rng = np.random.default_rng([seed, index])
    w, h = (int(v) for v in rng.integers(cfg.image_size[0], cfg.image_size[1] + 1, 2))
    img = _background(rng, h, w, cfg.noise_sigma)
    _distractors(rng, img, int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1)))
    objects: list[tuple[str, np.ndarray]] = []
    n_obj = int(rng.integers(cfg.objects_per_image[0], cfg.objects_per_image[1] + 1))
    in_crowds = int(rng.binomial(n_obj, cfg.crowd_fraction))
    left = in_crowds
    while left >= 2:  # crowds first, so the single objects are placed around them
        count = min(int(rng.integers(cfg.crowd_size[0], cfg.crowd_size[1] + 1)), left)
        _place_row(rng, img, objects, cfg, count)
        left -= count
    for _ in range(n_obj - in_crowds + left):
        _place(rng, img, objects, _random_class(rng), _side(rng, cfg), _uniform_centre(rng, w, h),
               cfg.class_colour_share)
    return np.clip(img, 0, 255).astype(np.uint8), objects


def _generate_large(seed: int, index: int, cfg: EmbeddedConfig) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """A ``scene: large`` image (module docstring); same contract as :func:`generate_image`."""
    lg = cfg.large
    rng = np.random.default_rng([seed, index, 1])  # its own stream: never a default image's
    w, h = (int(v) for v in rng.integers(lg.image_size[0], lg.image_size[1] + 1, 2))
    img = _background(rng, h, w)
    area_factor = w * h / (350.0 * 350.0)  # distractor density of a default image
    _distractors(rng, img, int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1) * area_factor))
    crowds = rng.uniform((0, 0), (w, h), (int(rng.integers(lg.crowds[0], lg.crowds[1] + 1)), 2))
    objects: list[tuple[str, np.ndarray]] = []
    for _ in range(int(rng.integers(lg.objects_per_image[0], lg.objects_per_image[1] + 1))):
        cls = _random_class(rng)
        side = math.exp(rng.uniform(math.log(lg.object_size[0]), math.log(lg.object_size[1])))
        if rng.random() < lg.crowd_fraction:
            centre = _crowd_centre(rng, w, h, crowds[int(rng.integers(len(crowds)))], lg.crowd_spread)
        else:
            centre = _uniform_centre(rng, w, h)
        _place(rng, img, objects, cls, side, centre, cfg.class_colour_share)
    return np.clip(img, 0, 255).astype(np.uint8), objects


def voc_xml(folder: str, file_name: str, width: int, height: int, objects: list[tuple[str, np.ndarray]]) -> str:
    """A VOC annotation document; boxes (continuous xyxy) become 1-based inclusive ints."""
    parts = [
        "<annotation>",
        f"\t<folder>{escape(folder)}</folder>",
        f"\t<filename>{escape(file_name)}</filename>",
        "\t<source>\n\t\t<database>SOD5 synthetic small-object database</database>\n\t</source>",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for cls, box in objects:
        x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
        x1, y1 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
        parts.append(
            f"\t<object>\n\t\t<name>{escape(cls)}</name>\n\t\t<pose>Unspecified</pose>\n"
            f"\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n"
            f"\t\t\t<xmin>{x0 + 1}</xmin>\n\t\t\t<ymin>{y0 + 1}</ymin>\n"
            f"\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>"
        )
    parts.append("</annotation>\n")
    return "\n".join(parts)


def generate_voc(root: str | os.PathLike[str], seed: int, cfg: EmbeddedConfig, progress: bool = True) -> Path:
    """Write the dataset atomically to ``root/VOCdevkit/SOD5``; returns that folder.

    Image ids are ``000000``..; the first ``num_train`` form ``train.txt`` (= ``trainval.txt``),
    the rest ``test.txt``.
    """
    final = Path(root) / "VOCdevkit" / DATASET_NAME
    n = cfg.num_train + cfg.num_test
    ids = [f"{i:06d}" for i in range(n)]
    with atomic_dir(final) as tmp:
        for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
            (tmp / sub).mkdir(parents=True)
        for i in tqdm(range(n), desc="embedded dataset", unit="img", disable=not progress):
            img, objects = generate_image(seed, i, cfg)
            name = f"{ids[i]}.jpg"
            write_image(tmp / "JPEGImages" / name, img, quality=cfg.jpeg_quality)
            xml = voc_xml(DATASET_NAME, name, img.shape[1], img.shape[0], objects)
            (tmp / "Annotations" / f"{ids[i]}.xml").write_text(xml)
        train, test = ids[: cfg.num_train], ids[cfg.num_train :]
        main = tmp / "ImageSets" / "Main"
        for split, lst in (("train", train), ("trainval", train), ("test", test)):
            write_text(main / f"{split}.txt", "".join(f"{i}\n" for i in lst))
    return final

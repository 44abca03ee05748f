"""LR sets: downsample every image of a set by ``scale`` and scale its boxes (METHODS.md §2).

Size: ``lr_w = max(1, round(W / scale))``, ``lr_h = max(1, round(H / scale))``,
rounded half up (:func:`lr_size`); other stages that need the LR size of an HR
image call that function.  Boxes are scaled by exactly ``(lr_w / W, lr_h / H)``
per axis, so they cover the same image content even when ``W`` is not divisible
by ``scale``.

Kernels: with ``antialias: true`` (default) images are resized by PIL
``Image.resize`` whose bicubic/bilinear/lanczos filters widen their support by the
reduction factor, i.e. they low-pass filter before subsampling (the same as
MATLAB ``imresize``, the usual way SR benchmarks make LR images); ``area``/``box``
is PIL's box (area-average) filter.  ``antialias: false`` uses OpenCV
``cv2.resize`` (INTER_CUBIC / LINEAR / LANCZOS4 / NEAREST), whose kernels keep
their unit support and so alias; ``area`` there is ``INTER_AREA``, which averages
by construction.  ``nearest`` is the same point sampling either way.

Tiny objects: boxes that become smaller than one LR pixel are kept — they are
exactly what small-object research studies.  A box keeps its exact scaled
extent; only an extent below ``MIN_EXTENT`` px (far below anything a VOC/COCO box
reaches at ×4, where the floor is 0.25 px) is widened to ``MIN_EXTENT`` about its
centre, shifted to stay inside the image, so every box stays non-degenerate.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from pipeline.atomic import atomic_dir
from pipeline.config import require
from pipeline.data.boxes import scale_boxes
from pipeline.data.images import ImageError, read_image, write_image
from pipeline.data.schema import (
    ImageRecord,
    images_dir,
    read_records,
    records_to_table,
    table_path,
    write_table,
)
from pipeline.parallel import parallel_map
from pipeline.paths import inside

Kernel = Literal["bicubic", "bilinear", "lanczos", "area", "box", "nearest"]
MIN_EXTENT = 0.01  # px; smallest box side kept in an LR set

_PIL = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}


MAX_SCALE = 32.0


@dataclass(frozen=True)
class DegradeConfig:
    """``degrade`` section of params.yaml.

    Attributes:
        scale: downsampling factor (1..32; 4 in the thesis).
        kernel: resampling kernel (see module docstring).
        antialias: low-pass filter before subsampling (PIL) or not (OpenCV).
        jpeg_quality: quality of re-encoded JPEGs (PNG inputs stay lossless PNG).
        workers: processes; 0 = all cores.
        cluster: Dask scheduler address (``tcp://host:8786``): run the per-image
            work on that cluster instead (:mod:`pipeline.dask_pool`); ``None`` = local.
    """

    scale: float = 4.0
    kernel: Kernel = "bicubic"
    antialias: bool = True
    jpeg_quality: int = 95
    workers: int = 0
    cluster: str | None = None

    def validate(self, prefix: str) -> None:
        # 32: a 300-500 px VOC/COCO image becomes ~10-16 px, every object sub-pixel; beyond that the
        # LR set is a few pixels (1e6 gives 1x1 images) and its metrics are meaningless.
        require(1 <= self.scale <= MAX_SCALE, f"{prefix}.scale",
                f"must be a downsampling factor in [1, {MAX_SCALE:g}], got {self.scale}")
        require(1 <= self.jpeg_quality <= 100, f"{prefix}.jpeg_quality", f"must be in 1..100, got {self.jpeg_quality}")
        require(self.workers >= 0, f"{prefix}.workers", f"must be >= 0 (0 = all cores), got {self.workers}")


def lr_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(lr_w, lr_h) = max(1, round-half-up(W / scale)), likewise for H."""
    return max(1, math.floor(width / scale + 0.5)), max(1, math.floor(height / scale + 0.5))


def resize_image(image: np.ndarray, size: tuple[int, int], kernel: Kernel = "bicubic", antialias: bool = True) -> np.ndarray:
    """Resize an (H, W, C) uint8 image to ``size = (w, h)``."""
    if antialias or kernel == "nearest":
        return np.asarray(Image.fromarray(image).resize(size, resample=_PIL[kernel]))
    import cv2

    flags = {
        "bicubic": cv2.INTER_CUBIC,
        "bilinear": cv2.INTER_LINEAR,
        "lanczos": cv2.INTER_LANCZOS4,
        "area": cv2.INTER_AREA,
        "box": cv2.INTER_AREA,
    }
    return cv2.resize(image, size, interpolation=flags[kernel])


def fit_boxes(boxes: np.ndarray, width: int, height: int, min_extent: float = MIN_EXTENT) -> np.ndarray:
    """Clip xyxy boxes into a ``width`` x ``height`` image and widen sides below ``min_extent`` about their centre."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    for lo, hi, limit in ((0, 2, float(width)), (1, 3, float(height))):
        b[:, lo] = np.clip(b[:, lo], 0.0, limit)
        b[:, hi] = np.clip(b[:, hi], 0.0, limit)
        thin = b[:, hi] - b[:, lo] < min_extent
        if thin.any():
            ext = min(min_extent, limit)
            centre = (b[thin, lo] + b[thin, hi]) / 2
            b[thin, lo] = np.clip(centre - ext / 2, 0.0, limit - ext)
            b[thin, hi] = np.minimum(b[thin, lo] + ext, limit)
    return b.astype(np.float32)


def degrade_record(record: ImageRecord, scale: float) -> ImageRecord:
    """The LR record: new size, boxes scaled by (lr_w / W, lr_h / H); labels/flags unchanged."""
    lw, lh = lr_size(record.width, record.height, scale)
    boxes = scale_boxes(record.boxes, lw / record.width, lh / record.height)
    # A mask area does not follow a box through resizing and clipping: the LR set uses box areas.
    return replace(record, width=lw, height=lh, boxes=fit_boxes(boxes, lw, lh), area=None)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already; avoid oversubscription


def _degrade_image(task: tuple[str, str, tuple[int, int], tuple[int, int], str, bool, int]) -> None:
    src, dst, expected, size, kernel, antialias, quality = task
    img = read_image(src)
    if (img.shape[1], img.shape[0]) != tuple(expected):
        raise ImageError(f"{src}: image is {img.shape[1]}x{img.shape[0]} but the annotation table says {expected[0]}x{expected[1]}")
    write_image(dst, resize_image(img, size, kernel, antialias), quality=quality)  # type: ignore[arg-type]


def check_images_exist(set_dir: str | os.PathLike[str], records: list[ImageRecord]) -> list[Path]:
    """The image path of each record, each inside the set's ``images/``.

    Raises:
        ContainmentError: a ``file_name`` that leaves ``images/`` (``..``, absolute, a link out).
        ImageError: naming the first missing image (and how many are missing).
    """
    root = images_dir(set_dir)
    paths = [inside(root, r.file_name) for r in records]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ImageError(f"{missing[0]}: image file not found{more}")
    return paths


def degrade_set(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    cfg: DegradeConfig = DegradeConfig(),
    progress: bool = True,
) -> dict[str, int]:
    """Write the LR version of set ``input_dir`` to ``output_dir`` (both splits, same file names).

    Images are streamed through a process pool (``cfg.workers``) into a temp
    directory that replaces ``output_dir`` only when complete.

    Returns:
        {"images": n, "objects": n, "sub_pixel_objects": n (a side < 1 LR px)}.
    """
    records, classes = read_records(input_dir)
    sources = check_images_exist(input_dir, records)
    lr_records = [degrade_record(r, cfg.scale) for r in records]
    with atomic_dir(output_dir) as tmp:
        tasks = (
            (str(src), str(inside(images_dir(tmp), r.file_name)), (r.width, r.height),
             (lr.width, lr.height), cfg.kernel, cfg.antialias, cfg.jpeg_quality)
            for src, r, lr in zip(sources, records, lr_records, strict=True)
        )
        for _ in parallel_map(
            _degrade_image, tasks, workers=cfg.workers, total=len(records), desc=f"degrade x{cfg.scale:g}",
            initializer=_init_worker, progress=progress, cluster=cfg.cluster,
        ):
            pass
        write_table(table_path(tmp), records_to_table(lr_records, classes))
    boxes = [r.boxes for r in lr_records if len(r)]
    all_boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
    sub_pixel = int(((all_boxes[:, 2] - all_boxes[:, 0] < 1) | (all_boxes[:, 3] - all_boxes[:, 1] < 1)).sum())
    return {"images": len(records), "objects": int(all_boxes.shape[0]), "sub_pixel_objects": sub_pixel}


"""Copy-paste augmentation of small objects (Kisantal et al. 2019, "Augmentation for
small object detection", arXiv:1902.07296; METHODS.md §3).

For each *training* image, with probability ``probability``: every small object
(area < ``small_max_area`` px², not difficult, not crowd; the area is the
annotation's own on COCO sources, which is what COCO calls small, else the box
area: :meth:`ImageRecord.object_areas`) is copied
``copies_per_object`` times; optionally ``cross_image_objects`` small objects of
*other* training images are added as sources (each also pasted
``copies_per_object`` times).  Each copy is rescaled by a ∈ U(scale_min,
scale_max) and pasted at a uniformly drawn position fully inside the image that
intersects no existing box (difficult and crowd included) and no earlier paste
(zero intersection area; touching edges are allowed), with at most
``max_attempts`` positions tried per copy.  A patch is the box crop (VOC has no
masks); ``blend: gaussian`` feathers its alpha with a Gaussian of sigma
``blend_radius``.  Pasted boxes are appended to the annotations
(difficult = iscrowd = False).

Test images are copied byte for byte, so the output is a complete set that
later stages treat like any other.  Randomness: each image draws from its own
generator seeded by (seed, sha256(image_id)), so results do not depend on worker
count or order.  Augmented images are re-encoded (JPEG at ``jpeg_quality``; PNG
stays lossless); untouched images keep their original bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.atomic import atomic_dir
from pipeline.augment.paste import crop_box, feather_alpha, find_free_position, paste, rescale_patch
from pipeline.config import require
from pipeline.data.boxes import size_bucket
from pipeline.data.degrade import check_images_exist
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


@dataclass(frozen=True)
class CopyPasteConfig:
    """``augment`` section of params.yaml (the run's ``seed`` is the top-level one).

    Attributes:
        probability: chance that a training image is augmented.
        copies_per_object: pastes per source object.
        small_max_area: objects with an area below this (px²) are copied (32² = COCO small;
            the annotation's area on COCO sources, else the box area).
        scale_min, scale_max: range of the random rescale factor a of each copy.
        max_attempts: positions tried per copy before giving it up.
        cross_image_objects: extra source objects per augmented image drawn from
            other training images (0 = same-image only).
        bank_size: at most this many small-object patches are kept for cross-image pasting.
        blend: "none" (hard edges) or "gaussian" (feathered alpha).
        blend_radius: Gaussian sigma in px for ``blend: gaussian``.
        jpeg_quality: quality of re-encoded augmented JPEGs.
        workers: processes; 0 = all cores.
        cluster: Dask scheduler address (``tcp://host:8786``): run the per-image
            work on that cluster instead (:mod:`pipeline.dask_pool`); ``None`` = local.
    """

    probability: float = 0.5
    copies_per_object: int = 1
    small_max_area: float = 1024.0
    scale_min: float = 0.5
    scale_max: float = 1.5
    max_attempts: int = 20
    cross_image_objects: int = 0
    bank_size: int = 2048
    blend: Literal["none", "gaussian"] = "none"
    blend_radius: float = 1.0
    jpeg_quality: int = 95
    workers: int = 0
    cluster: str | None = None

    def validate(self, prefix: str) -> None:
        require(0.0 <= self.probability <= 1.0, f"{prefix}.probability", f"must be in [0, 1], got {self.probability}")
        require(self.copies_per_object >= 0, f"{prefix}.copies_per_object", "must be >= 0")
        require(self.small_max_area > 0, f"{prefix}.small_max_area", "must be > 0")
        require(0 < self.scale_min <= self.scale_max, f"{prefix}.scale_min",
                f"need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")
        require(self.max_attempts >= 1, f"{prefix}.max_attempts", "must be >= 1")
        require(self.cross_image_objects >= 0, f"{prefix}.cross_image_objects", "must be >= 0")
        require(self.bank_size >= 1, f"{prefix}.bank_size", "must be >= 1")
        require(self.blend_radius > 0, f"{prefix}.blend_radius", "must be > 0")
        require(1 <= self.jpeg_quality <= 100, f"{prefix}.jpeg_quality", "must be in 1..100")
        require(self.workers >= 0, f"{prefix}.workers", "must be >= 0 (0 = all cores)")


@dataclass(frozen=True)
class Patch:
    """A small object cut from a training image: pixels (h, w, 3), class id, where it came from."""

    image_id: str
    label: int
    crop: tuple[int, int, int, int]
    pixels: np.ndarray


@dataclass(frozen=True)
class Paste:
    """One pasted copy: its source and its destination box (float32 xyxy, whole pixels)."""

    source_image_id: str
    source_crop: tuple[int, int, int, int]
    label: int
    scale: float
    box: np.ndarray


def image_rng(seed: int, image_id: str) -> np.random.Generator:
    """Generator for one image, independent of processing order."""
    digest = int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([seed, digest]))


def small_object_mask(record: ImageRecord, small_max_area: float) -> np.ndarray:
    """(N,) bool: objects that may be copied (area < small_max_area, not difficult, not crowd).

    The area is the annotation's own where the record has one (COCO), else the box area.
    """
    return (record.object_areas() < small_max_area) & ~record.difficult & ~record.iscrowd


def own_patches(image: np.ndarray, record: ImageRecord, small_max_area: float) -> list[Patch]:
    """Patches of the small objects of ``record`` cut from its ``image``."""
    out = []
    for i in np.flatnonzero(small_object_mask(record, small_max_area)):
        pixels, crop = crop_box(image, record.boxes[i])
        out.append(Patch(record.image_id, int(record.labels[i]), crop, pixels))
    return out


def has_sources(record: ImageRecord, cfg: CopyPasteConfig, bank: list[Patch] | None = None) -> bool:
    """Whether an augmented ``record`` could receive any paste (own small objects or a usable bank)."""
    if cfg.copies_per_object == 0:
        return False
    if small_object_mask(record, cfg.small_max_area).any():
        return True
    return bool(cfg.cross_image_objects) and any(p.image_id != record.image_id for p in bank or [])


def copy_paste_image(
    image: np.ndarray,
    record: ImageRecord,
    rng: np.random.Generator,
    cfg: CopyPasteConfig,
    bank: list[Patch] | None = None,
) -> tuple[np.ndarray, ImageRecord, list[Paste], int]:
    """Augment one image: the probability draw, then :func:`paste_objects`.

    Args:
        image: (H, W, 3) uint8, matching ``record``'s size.
        bank: patches of other training images for cross-image sources.

    Returns:
        (new image, record with pasted boxes appended, pastes, failed placements).
    """
    if rng.random() >= cfg.probability:
        return image, record, [], 0
    return paste_objects(image, record, rng, cfg, bank)


def paste_objects(
    image: np.ndarray,
    record: ImageRecord,
    rng: np.random.Generator,
    cfg: CopyPasteConfig,
    bank: list[Patch] | None = None,
) -> tuple[np.ndarray, ImageRecord, list[Paste], int]:
    """Paste copies of the small objects of ``record`` (and of ``bank`` patches) into ``image``.

    Same arguments and returns as :func:`copy_paste_image`, without the probability draw.
    """
    sources = own_patches(image, record, cfg.small_max_area)
    foreign = [p for p in (bank or []) if p.image_id != record.image_id]
    if cfg.cross_image_objects and foreign:
        picks = rng.choice(len(foreign), size=min(cfg.cross_image_objects, len(foreign)), replace=False)
        sources += [foreign[int(i)] for i in picks]
    out = image.copy()
    occupied = record.boxes.reshape(-1, 4).astype(np.float32)
    pastes: list[Paste] = []
    failed = 0
    for src in sources:
        for _ in range(cfg.copies_per_object):
            factor = float(rng.uniform(cfg.scale_min, cfg.scale_max))
            pixels = rescale_patch(src.pixels, factor)
            h, w = pixels.shape[:2]
            box = find_free_position((w, h), (record.width, record.height), occupied, rng, cfg.max_attempts)
            if box is None:
                failed += 1
                continue
            alpha = feather_alpha(h, w, cfg.blend_radius) if cfg.blend == "gaussian" else None
            paste(out, pixels, box, alpha)
            occupied = np.concatenate([occupied, box[None]])
            pastes.append(Paste(src.image_id, src.crop, src.label, factor, box))
    if not pastes:
        return image, record, [], failed
    n = len(pastes)
    new = replace(
        record,
        boxes=np.concatenate([record.boxes.reshape(-1, 4), np.stack([p.box for p in pastes])]).astype(np.float32),
        labels=np.concatenate([record.labels, np.array([p.label for p in pastes], np.int64)]),
        difficult=np.concatenate([record.difficult, np.zeros(n, bool)]),
        iscrowd=np.concatenate([record.iscrowd, np.zeros(n, bool)]),
        area=None if record.area is None else np.concatenate([record.area, np.full(n, np.nan)]),  # NaN: box area
    )
    return out, new, pastes, failed


# --- set level -----------------------------------------------------------------------------------

_WORKER: dict[str, object] = {}


def _init_worker(cfg: CopyPasteConfig, seed: int, bank: list[Patch]) -> None:
    _WORKER.update(cfg=cfg, seed=seed, bank=bank)


def _copy(src: str, dst: str, record: ImageRecord) -> tuple[ImageRecord, int, int]:
    """Keep an image byte for byte (no re-encoding)."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return record, 0, 0


def _augment_one(task: tuple[ImageRecord, str, str]) -> tuple[ImageRecord, int, int]:
    record, src, dst = task
    cfg: CopyPasteConfig = _WORKER["cfg"]  # type: ignore[assignment]
    if record.split != "train":
        return _copy(src, dst, record)
    bank: list[Patch] = _WORKER["bank"]  # type: ignore[assignment]
    rng = image_rng(_WORKER["seed"], record.image_id)  # type: ignore[arg-type]
    # same generator stream as copy_paste_image, but images left alone are never decoded
    if rng.random() >= cfg.probability or not has_sources(record, cfg, bank):
        return _copy(src, dst, record)
    image = read_image(src)
    if (image.shape[1], image.shape[0]) != (record.width, record.height):
        raise ImageError(f"{src}: image is {image.shape[1]}x{image.shape[0]} but the table says {record.width}x{record.height}")
    out, new, pastes, failed = paste_objects(image, record, rng, cfg, bank)
    if not pastes:
        return _copy(src, dst, record)[0], 0, failed
    write_image(dst, out, quality=cfg.jpeg_quality)
    return new, len(pastes), failed


def _bank_patches(task: tuple[ImageRecord, str, float]) -> list[Patch]:
    record, src, small_max_area = task
    return own_patches(read_image(src), record, small_max_area)


def build_bank(
    set_dir: str | os.PathLike[str], records: list[ImageRecord], cfg: CopyPasteConfig, seed: int, progress: bool = True
) -> list[Patch]:
    """Small-object patches of the training images for cross-image pasting.

    If there are more small objects than ``cfg.bank_size``, a seeded random subset
    of that many is kept (patches are tiny: 2048 patches of < 32² px are < 7 MB).
    """
    train = [r for r in records if r.split == "train" and small_object_mask(r, cfg.small_max_area).any()]
    root = images_dir(set_dir)
    tasks = ((r, str(inside(root, r.file_name)), cfg.small_max_area) for r in train)
    patches = [
        p
        for ps in parallel_map(
            _bank_patches, tasks, workers=cfg.workers, total=len(train), desc="patch bank", progress=progress,
            cluster=cfg.cluster,
        )
        for p in ps
    ]
    if len(patches) > cfg.bank_size:
        keep = np.sort(np.random.default_rng(seed).choice(len(patches), cfg.bank_size, replace=False))
        patches = [patches[int(i)] for i in keep]
    return patches


def _coco_small(records: list[ImageRecord]) -> int:
    return int(sum((size_bucket(r.object_areas()[~r.difficult & ~r.iscrowd]) == 0).sum() for r in records))


def copy_paste_set(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    cfg: CopyPasteConfig = CopyPasteConfig(),
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict[str, int], list[tuple[ImageRecord, ImageRecord]]]:
    """Write the copy-paste augmented version of set ``input_dir`` to ``output_dir`` (atomically).

    Returns:
        metrics (train split: images, images_augmented, pastes, failed_placements,
        instances and COCO-small instances before/after), and (before, after)
        record pairs of the augmented images, for figures.
    """
    records, classes = read_records(input_dir)
    sources = check_images_exist(input_dir, records)  # also: every file_name stays inside images/
    bank = build_bank(input_dir, records, cfg, seed, progress) if cfg.cross_image_objects else []
    new_records: list[ImageRecord] = []
    pastes = failed = 0
    with atomic_dir(output_dir) as tmp:
        tasks = ((r, str(src), str(inside(images_dir(tmp), r.file_name))) for r, src in zip(records, sources, strict=True))
        for new, n, f in parallel_map(
            _augment_one, tasks, workers=cfg.workers, total=len(records), desc="copy-paste",
            initializer=_init_worker, initargs=(cfg, seed, bank), progress=progress, cluster=cfg.cluster,
        ):
            new_records.append(new)
            pastes += n
            failed += f
        write_table(table_path(tmp), records_to_table(new_records, classes))
    before = [r for r in records if r.split == "train"]
    after = [r for r in new_records if r.split == "train"]
    changed = [(b, a) for b, a in zip(records, new_records, strict=True) if len(a) != len(b)]
    metrics = {
        "train_images": len(before),
        "images_augmented": len(changed),
        "pastes": pastes,
        "failed_placements": failed,
        "bank_patches": len(bank),
        "instances_before": int(sum(len(r) for r in before)),
        "instances_after": int(sum(len(r) for r in after)),
        "small_instances_before": _coco_small(before),
        "small_instances_after": _coco_small(after),
    }
    return metrics, changed


def examples_figure(
    path: str | os.PathLike[str],
    set_dir: str | os.PathLike[str],
    pairs: list[tuple[ImageRecord, ImageRecord]],
    fallback: list[ImageRecord] = (),  # type: ignore[assignment]
    n: int = 4,
) -> None:
    """PNG of up to ``n`` augmented images: original boxes green, pasted boxes red.

    With no augmented image (e.g. probability 0), the first ``fallback`` records are shown unchanged.
    """
    from pipeline.plots import draw_boxes, image_grid_png

    images, titles = [], []
    for before, after in (pairs or [(r, r) for r in fallback])[:n]:
        img = read_image(inside(images_dir(set_dir), after.file_name))
        img = draw_boxes(img, after.boxes[: len(before)], (0, 200, 0), width=1)
        img = draw_boxes(img, after.boxes[len(before):], (255, 40, 40), width=1)
        images.append(img)
        titles.append(f"{after.image_id}: {len(before)} objects + {len(after) - len(before)} pasted")
    if not images:
        raise ValueError(f"{path}: no images to show")
    image_grid_png(path, images, titles, cols=2, suptitle="copy-paste: original boxes green, pasted red")

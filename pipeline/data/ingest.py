"""Ingest a fetched source (``source.json``) into an HR set: images + annotation table.

Every record is checked: the annotation parses, its classes are known, boxes are
non-degenerate and inside the image (VOC's usual 1-px overshoot is clipped, more is
an error), the image file exists, decodes (or at least has a readable header) and
has the size the annotation states and no more than ``max_image_pixels`` pixels.
Every path built from the metadata (a VOC list id, an XML ``<filename>``, a COCO
``file_name``) must stay inside its root (:func:`pipeline.paths.inside`): the source
folder when reading, the set's ``images/`` when writing; two images may not share a
file.  Image ids need only be unique within their split (each COCO JSON numbers its
own images from 1): images are keyed by ``(split, id)``.  With ``on_error: fail`` all problems are collected and raised together and
nothing is written; with ``skip`` bad objects or images are dropped and listed in the
report.  Problems of a whole annotation file (malformed COCO JSON, missing split list,
differing category lists) cannot be skipped and always fail, and so does a split left
without images.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from pipeline.atomic import atomic_dir, write_json
from pipeline.config import require
from pipeline.data.boxes import size_bucket, voc_to_xyxy, xywh_to_xyxy
from pipeline.data.coco import load_coco
from pipeline.data.images import MAX_PIXELS, ImageError, image_size, read_image
from pipeline.data.schema import (
    SPLITS,
    ImageRecord,
    images_dir,
    records_to_table,
    size_measure,
    table_path,
    write_table,
)
from pipeline.data.sources import SOURCE_FILE, SourceError
from pipeline.data.voc import AnnotationError, parse_voc_xml, read_id_list
from pipeline.errors import PipelineError
from pipeline.paths import ContainmentError, inside


@dataclass(frozen=True)
class IngestConfig:
    """Params section ``ingest``.

    Attributes:
        on_error: ``fail`` (stop, list all problems, write nothing) or ``skip``.
        verify_images: ``decode`` (full decode, catches truncated files) or
            ``header`` (size from the header only; faster on very large sets).
        box_tolerance: px a box may overshoot the image and be clipped (VOC: 1).
        workers: threads checking images.
        max_image_pixels: an image whose header declares more pixels is a bad image
            (decompression-bomb guard); at most Pillow's own limit, 178956970.
    """

    on_error: Literal["fail", "skip"] = "fail"
    verify_images: Literal["decode", "header"] = "decode"
    box_tolerance: float = 1.0
    workers: int = 2
    max_image_pixels: int = MAX_PIXELS

    def validate(self, prefix: str) -> None:
        require(0.0 <= self.box_tolerance <= 8.0, f"{prefix}.box_tolerance", "must be in [0, 8]")
        require(1 <= self.workers <= 64, f"{prefix}.workers", "must be in [1, 64]")
        require(1 <= self.max_image_pixels <= MAX_PIXELS, f"{prefix}.max_image_pixels",
                f"must be in [1, {MAX_PIXELS}] (Pillow refuses larger images), got {self.max_image_pixels}")


@dataclass
class Problem:
    """One bad record. ``level``: object | image (skippable) or file (always fatal)."""

    split: str
    file: str
    level: Literal["object", "image", "file"]
    problem: str
    image_id: str | None = None

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


class IngestError(PipelineError, ValueError):
    """Ingest found problems; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        head = f"ingest found {len(problems)} problem(s); nothing was written:"
        super().__init__("\n  ".join([head, *map(str, problems)]))


@dataclass
class _Object:
    cls: str | int  # class name (VOC) or category id (COCO)
    box: tuple[float, float, float, float]  # continuous xyxy
    difficult: bool = False
    iscrowd: bool = False
    area: float = math.nan  # the annotation's own area (COCO: mask area); NaN: the box area


@dataclass
class _Image:
    image_id: str
    file_name: str  # relative path inside the set's images/
    split: str
    src: Path
    ann_file: str
    width: int
    height: int
    objects: list[_Object] = field(default_factory=list)


def _resolve(raw: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else raw / q


def _voc_images(raw: Path, split: str, entry: dict[str, str], problems: list[Problem]) -> Iterator[_Image]:
    root = _resolve(raw, entry["root"])
    id_list = root / entry["ids"]
    try:
        ids = read_id_list(id_list)
    except AnnotationError as exc:
        problems.append(Problem(split, str(id_list), "file", str(exc).split(": ", 1)[-1]))
        return
    for iid in ids:
        image_id = f"{root.name}/{iid}"
        try:
            xml, src = inside(root / "Annotations", f"{iid}.xml"), inside(root / "JPEGImages", f"{iid}.jpg")
        except ContainmentError as exc:
            problems.append(Problem(split, str(id_list), "image", f"id {iid!r}: {exc}", image_id))
            continue
        try:
            ann = parse_voc_xml(xml)
        except AnnotationError as exc:
            problems.append(Problem(split, str(xml), "image", str(exc).split(": ", 1)[-1], image_id))
            continue
        try:  # <filename> is not read (the id names the image), but a traversal there marks a tampered file
            if ann.filename:
                inside(root / "JPEGImages", ann.filename)
        except ContainmentError as exc:
            problems.append(Problem(split, str(xml), "image", f"<filename>: {exc}", image_id))
            continue
        objects = [_Object(o.name, voc_to_xyxy(*o.box), difficult=o.difficult) for o in ann.objects]
        yield _Image(image_id, f"{root.name}/{iid}.jpg", split, src, str(xml), ann.width, ann.height, objects)


def _is_number(v: object) -> bool:
    """A JSON number (``true``/``false`` are not numbers, though Python's bool is an int)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _coco_images(
    raw: Path, split: str, entry: dict[str, str], problems: list[Problem], cats: dict[str, Any]
) -> Iterator[_Image]:
    img_dir, ann_path = _resolve(raw, entry["images"]), _resolve(raw, entry["annotations"])
    try:
        coco = load_coco(ann_path)
    except AnnotationError as exc:
        problems.append(Problem(split, str(ann_path), "file", str(exc).split(": ", 1)[-1]))
        return
    if cats.setdefault("list", coco.categories) != coco.categories:
        problems.append(Problem(split, str(ann_path), "file",
                                f"category list differs from {cats['file']}"))
        return
    cats.setdefault("file", str(ann_path))
    for ann in coco.orphans:
        problems.append(Problem(split, str(ann_path), "object",
                                f"annotation {ann.get('id') if isinstance(ann, dict) else ann!r} refers to "
                                f"unknown image id {ann.get('image_id') if isinstance(ann, dict) else None!r}"))
    for im in coco.images:
        try:
            src = inside(img_dir, im.file_name)
        except ContainmentError as exc:
            problems.append(Problem(split, str(ann_path), "image", f"image {im.id}: {exc}", str(im.id)))
            continue
        objects = []
        for ann in im.annotations:
            bbox = ann.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
                problems.append(Problem(split, str(ann_path), "object",
                                        f"annotation {ann.get('id')} of image {im.id}: bbox {bbox!r} is not 4 numbers",
                                        str(im.id)))
                continue
            box = tuple(float(v) for v in xywh_to_xyxy(np.asarray(bbox, np.float64))[0])
            area = ann.get("area", math.nan)
            if not (_is_number(area) and (math.isnan(area) or 0 < area < math.inf)):
                problems.append(Problem(split, str(ann_path), "object",
                                        f"annotation {ann.get('id')} of image {im.id}: area {area!r} is not a "
                                        "positive number", str(im.id)))
                continue
            objects.append(_Object(ann.get("category_id"), box, iscrowd=bool(ann.get("iscrowd", 0)),  # type: ignore[arg-type]
                                   area=float(area)))
        yield _Image(str(im.id), f"{img_dir.name}/{im.file_name}", split, src, str(ann_path),
                     im.width, im.height, objects)


def _check_objects(img: _Image, index: dict[Any, int], tol: float, problems: list[Problem]) -> tuple[list, int]:
    """Map classes, validate and clip boxes; returns ([(label, box, difficult, iscrowd, area)], clipped)."""
    kept, clipped = [], 0
    for k, obj in enumerate(img.objects):
        where = f"object {k} ({obj.cls!r}) of image {img.image_id}"
        try:
            known = obj.cls in index and not isinstance(obj.cls, bool)  # true == 1 in Python, not in JSON
        except TypeError:  # e.g. a JSON list as category_id
            known = False
        if not known:
            problems.append(Problem(img.split, img.ann_file, "object", f"{where}: unknown class", img.image_id))
            continue
        x0, y0, x1, y1 = obj.box
        if not all(math.isfinite(v) for v in obj.box) or x1 <= x0 or y1 <= y0:
            problems.append(Problem(img.split, img.ann_file, "object",
                                    f"{where}: degenerate box {obj.box}", img.image_id))
            continue
        if x0 < -tol or y0 < -tol or x1 > img.width + tol or y1 > img.height + tol:
            problems.append(Problem(img.split, img.ann_file, "object",
                                    f"{where}: box {obj.box} outside the {img.width}x{img.height} image",
                                    img.image_id))
            continue
        box = (max(x0, 0.0), max(y0, 0.0), min(x1, float(img.width)), min(y1, float(img.height)))
        if box != (x0, y0, x1, y1):
            clipped += 1
            if box[2] <= box[0] or box[3] <= box[1]:
                problems.append(Problem(img.split, img.ann_file, "object",
                                        f"{where}: box {obj.box} is empty inside the image", img.image_id))
                continue
        kept.append((index[obj.cls], box, obj.difficult, obj.iscrowd, obj.area))
    return kept, clipped


def _check_image(img: _Image, decode: bool, max_pixels: int) -> str | None:
    """None if the image file is fine and matches the annotated size, else the problem."""
    try:
        if decode:
            h, w = read_image(img.src, max_pixels).shape[:2]
        else:
            w, h = image_size(img.src, max_pixels)
    except ImageError as exc:
        return str(exc).split(": ", 1)[-1]
    if (w, h) != (img.width, img.height):
        return f"image is {w}x{h} but the annotation says {img.width}x{img.height}"
    return None


def _link_or_copy(src: Path, dst: Path) -> bool:
    """Hard-link ``src`` to ``dst`` (True) or copy it when linking is impossible (False); never overwrites."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        return True
    except FileExistsError:
        raise
    except OSError:  # another file system, or links not allowed: ``dst`` is still absent
        shutil.copy2(src, dst)
        return False


def _unique_images(images: list[_Image], out: Path, problems: list[Problem]) -> list[_Image]:
    """Drop (listing a problem) an image whose id repeats in its split or whose set-side file is taken."""
    seen: set[tuple[str, str]] = set()  # (split, image id): ids are unique per split only
    owner: dict[Path, _Image] = {}  # set-side file -> the image that has it
    unique: list[_Image] = []
    for img in images:
        if (img.split, img.image_id) in seen:
            problems.append(Problem(img.split, img.ann_file, "image",
                                    f"image {img.image_id} is listed twice in split {img.split!r}", img.image_id))
            continue
        try:
            dst = inside(images_dir(out), img.file_name)
        except ContainmentError as exc:
            problems.append(Problem(img.split, img.ann_file, "image", f"image {img.image_id}: {exc}", img.image_id))
            continue
        if dst in owner:
            other = owner[dst]
            problems.append(Problem(img.split, img.ann_file, "image", f"image {img.image_id}: file "
                                    f"{img.file_name!r} is also image {other.image_id}'s (split {other.split!r})",
                                    img.image_id))
            continue
        seen.add((img.split, img.image_id))
        owner[dst] = img
        unique.append(img)
    return unique


def _empty_splits(records: list[ImageRecord], problems: list[Problem], source: Path) -> list[Problem]:
    """A file-level problem for each split that ends up without images."""
    out = []
    for split in SPLITS:
        if not any(r.split == split for r in records):
            n = sum(1 for p in problems if p.split == split)
            out.append(Problem(split, str(source), "file", f"split {split!r} has no images after ingest"
                               + (f" ({n} problem(s) in it, listed here)" if n else "")))
    return out


def _split_counts(records: list[ImageRecord], classes: list[str]) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for split in SPLITS:
        recs = [r for r in records if r.split == split]
        labels = np.concatenate([r.labels for r in recs]) if recs else np.zeros(0, np.int64)
        area = np.concatenate([r.object_areas() for r in recs]) if recs else np.zeros(0)
        buckets = Counter(size_bucket(area).tolist())
        counts[split] = {
            "images": len(recs),
            "objects": int(labels.size),
            "empty_images": sum(1 for r in recs if len(r) == 0),
            "difficult": int(sum(r.difficult.sum() for r in recs)),
            "crowd": int(sum(r.iscrowd.sum() for r in recs)),
            "small": buckets.get(0, 0), "medium": buckets.get(1, 0), "large": buckets.get(2, 0),
            "per_class": {c: int((labels == i).sum()) for i, c in enumerate(classes)},
        }
    return counts


def ingest(
    raw: str | os.PathLike[str],
    out: str | os.PathLike[str],
    cfg: IngestConfig,
    report_path: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build the set ``out`` from the source described by ``raw/source.json``; return the report.

    Raises:
        IngestError: any problem under ``on_error: fail``, or a file-level problem.
        SourceError: no ``source.json``.
    """
    raw, out = Path(raw), Path(out)
    src_file = raw / SOURCE_FILE
    if not src_file.is_file():
        raise SourceError(f"{src_file}: source description not found (run the fetch stage)")
    desc = json.loads(src_file.read_text())
    fmt, problems = desc["format"], []
    cats: dict[str, Any] = {}
    images: list[_Image] = []
    for split in SPLITS:
        for entry in desc["splits"].get(split, []):
            gen = _voc_images(raw, split, entry, problems) if fmt == "voc" else _coco_images(
                raw, split, entry, problems, cats)
            images.extend(gen)
    if fmt == "voc":
        classes = list(desc["classes"])
        index: dict[Any, int] = {c: i for i, c in enumerate(classes)}
    else:
        classes = [name for _, name in cats.get("list", [])]
        index = {cid: i for i, (cid, _) in enumerate(cats.get("list", []))}

    unique = _unique_images(images, out, problems)

    decode = cfg.verify_images == "decode"
    with ThreadPoolExecutor(cfg.workers) as pool:
        checks = list(tqdm(pool.map(lambda im: _check_image(im, decode, cfg.max_image_pixels), unique),
                           total=len(unique), desc="check images", unit="img", disable=not progress))
    records, sources, clipped = [], [], 0
    for img, image_problem in zip(unique, checks, strict=True):
        if image_problem is not None:
            problems.append(Problem(img.split, str(img.src), "image", image_problem, img.image_id))
        kept, n_clip = _check_objects(img, index, cfg.box_tolerance, problems)
        clipped += n_clip
        if image_problem is not None:
            continue
        sources.append(img.src)
        records.append(ImageRecord(
            img.image_id, img.file_name, img.split, img.width, img.height,
            boxes=np.asarray([k[1] for k in kept], np.float64).reshape(-1, 4),
            labels=np.asarray([k[0] for k in kept], np.int64),
            difficult=np.asarray([k[2] for k in kept], bool),
            iscrowd=np.asarray([k[3] for k in kept], bool),
            area=np.asarray([k[4] for k in kept], np.float64) if fmt == "coco" else None,
        ))
    fatal = [p for p in problems if p.level == "file"]
    if fatal or (problems and cfg.on_error == "fail"):
        raise IngestError(fatal or problems)
    empty = _empty_splits(records, problems, src_file)
    if empty:  # never a "successful" set without train or test images; the skips say why
        raise IngestError(empty + problems)

    linked = 0
    with atomic_dir(out) as tmp:
        for r, src in tqdm(zip(records, sources, strict=True), total=len(records), desc="link images", unit="img",
                           disable=not progress):
            linked += _link_or_copy(src, inside(images_dir(tmp), r.file_name))
        write_table(table_path(tmp), records_to_table(records, classes))

    skipped_images = {(p.split, p.image_id) for p in problems if p.level == "image"}
    report = {
        "source": desc.get("source"),
        "format": fmt,
        "on_error": cfg.on_error,
        "verify_images": cfg.verify_images,
        "classes": classes,
        "size_measure": size_measure(records),
        "counts": _split_counts(records, classes),
        "clipped_boxes": clipped,
        "linked_images": linked,
        "copied_images": len(records) - linked,
        "skipped_images": len(skipped_images),
        "skipped_objects": sum(1 for p in problems if p.level == "object" and (p.split, p.image_id) not in skipped_images),
        "skipped": [asdict(p) for p in problems],
    }
    if report_path is not None:
        write_json(report_path, report)
    return report

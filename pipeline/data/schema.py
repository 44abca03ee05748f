"""The one annotation contract shared by every image set (HR, LR, SR, bicubic, augmented).

A *set* is a directory::

    <set>/images/<file_name>       JPEG/PNG images (file_name may contain sub-dirs)
    <set>/annotations.parquet      one row per object

Table columns (see ``SCHEMA``): ``image_id`` (unique within its split: an image is
identified by ``(split, image_id)``, as a COCO id is only unique in its own split's
JSON), ``file_name`` (unique in the set), ``split`` ("train" | "test"), ``width``/``height`` (pixels of *this* set's image), ``category`` and
``category_id`` (0-based index into the class list), ``xmin, ymin, xmax, ymax``
(float64 pixels, full precision for evaluation, see :mod:`pipeline.data.boxes`),
``difficult`` (VOC) and ``iscrowd`` (COCO).  An image without objects is kept as a
single row with ``category_id == -1``, empty ``category`` and NaN box, so no image
is lost.  The ordered class list is stored in the Parquet schema metadata under
``classes``.

Optional column ``area`` (float64): the annotation's own object area in this set's
pixels, as COCO gives it (the mask area, which defines the official small/medium/
large buckets); NaN or an absent column means the box area.  Only ingest of a COCO
source writes it; a resampled (LR) set drops it (a mask area does not follow a box
through resizing and clipping), pasted objects have none, VOC sets never have it.
Which measure a set's size buckets use is derived from it: :func:`size_measure`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import atomic_path
from pipeline.data.boxes import areas
from pipeline.errors import PipelineError

TABLE_NAME = "annotations.parquet"
IMAGES_DIR = "images"
SPLITS = ("train", "test")

SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("file_name", pa.string()),
        ("split", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("category", pa.string()),
        ("category_id", pa.int32()),
        ("xmin", pa.float64()),
        ("ymin", pa.float64()),
        ("xmax", pa.float64()),
        ("ymax", pa.float64()),
        ("difficult", pa.bool_()),
        ("iscrowd", pa.bool_()),
    ]
)
AREA = pa.field("area", pa.float64())  # optional, see the module docstring


class SchemaError(PipelineError, ValueError):
    """An annotation table violates the contract; the message names file and problem."""


class MissingTableError(SchemaError, FileNotFoundError):
    """A set folder has no annotation table."""


@dataclass
class ImageRecord:
    """All objects of one image, as arrays.

    Attributes:
        boxes: (N, 4) xyxy pixels (float64 when read from a table).
        labels: (N,) int64 category ids (0-based).
        difficult, iscrowd: (N,) bool.
        area: (N,) float64 annotation areas (NaN: use the box area), or None (box areas).
    """

    image_id: str
    file_name: str
    split: str
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    difficult: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    iscrowd: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    area: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def object_areas(self) -> np.ndarray:
        """(N,) float64 area of each object: its annotation area where known, else its box area."""
        box = areas(np.asarray(self.boxes, np.float64))
        if self.area is None:
            return box
        own = np.asarray(self.area, np.float64).reshape(-1)
        if own.shape != box.shape:
            raise SchemaError(f"image {self.image_id!r}: {own.size} areas for {box.size} objects")
        return np.where(np.isnan(own), box, own)


def size_measure(records: Iterable[ImageRecord]) -> str:
    """Which area the size buckets of ``records`` use.

    Returns:
        ``"coco_area"`` when the records carry annotation areas (``area``) and every
        object has one, ``"box_area"`` when no object has one, else ``"mixed"`` (e.g.
        an augmented COCO set: pasted objects fall back to their box area).
    """
    records = list(records)
    own = [np.isfinite(np.asarray(r.area, np.float64)) if r.area is not None else np.zeros(len(r), bool) for r in records]
    known = np.concatenate(own) if own else np.zeros(0, bool)
    if any(r.area is not None for r in records) and known.all():
        return "coco_area"
    return "mixed" if known.any() else "box_area"


def table_path(set_dir: str | os.PathLike[str]) -> Path:
    return Path(set_dir) / TABLE_NAME


def images_dir(set_dir: str | os.PathLike[str]) -> Path:
    return Path(set_dir) / IMAGES_DIR


def records_to_table(records: Iterable[ImageRecord], classes: Sequence[str]) -> pa.Table:
    """Flatten image records into the one-row-per-object table (with ``area`` if any record has areas)."""
    cols: dict[str, list] = {name: [] for name in [*SCHEMA.names, AREA.name]}
    for r in records:
        n = len(r)
        if r.area is None or n == 0:
            cols[AREA.name].extend([float("nan")] * max(n, 1))
        else:
            r.object_areas()  # checks the count
            cols[AREA.name].extend(np.asarray(r.area, np.float64).reshape(-1).tolist())
        rows = range(max(n, 1))
        for i in rows:
            cols["image_id"].append(r.image_id)
            cols["file_name"].append(r.file_name)
            cols["split"].append(r.split)
            cols["width"].append(int(r.width))
            cols["height"].append(int(r.height))
            if n == 0:
                cols["category"].append("")
                cols["category_id"].append(-1)
                for k in ("xmin", "ymin", "xmax", "ymax"):
                    cols[k].append(float("nan"))
                cols["difficult"].append(False)
                cols["iscrowd"].append(False)
                continue
            cid = int(r.labels[i])
            cols["category"].append(classes[cid])
            cols["category_id"].append(cid)
            for j, k in enumerate(("xmin", "ymin", "xmax", "ymax")):
                cols[k].append(float(r.boxes[i, j]))
            cols["difficult"].append(bool(r.difficult[i]))
            cols["iscrowd"].append(bool(r.iscrowd[i]))
    meta = {b"classes": json.dumps(list(classes)).encode()}
    if all(r.area is None for r in records):
        del cols[AREA.name]
        return pa.table(cols, schema=SCHEMA.with_metadata(meta))
    return pa.table(cols, schema=SCHEMA.append(AREA).with_metadata(meta))


def table_to_records(table: pa.Table) -> list[ImageRecord]:
    """Group table rows back into per-image records (keyed by split and ``image_id``), in first-appearance order."""
    names = [*SCHEMA.names, *([AREA.name] if AREA.name in table.schema.names else [])]
    d = {name: table.column(name).to_numpy(zero_copy_only=False) for name in names}
    order: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(d["split"], d["image_id"], strict=True)):
        order.setdefault(key, []).append(i)
    records = []
    for (_, iid), idx in order.items():
        idx_arr = np.asarray(idx)
        keep = idx_arr[d["category_id"][idx_arr] >= 0]
        first = idx_arr[0]
        records.append(
            ImageRecord(
                image_id=str(iid),
                file_name=str(d["file_name"][first]),
                split=str(d["split"][first]),
                width=int(d["width"][first]),
                height=int(d["height"][first]),
                boxes=np.stack([d[k][keep] for k in ("xmin", "ymin", "xmax", "ymax")], 1)
                .astype(np.float64)
                .reshape(-1, 4),
                labels=d["category_id"][keep].astype(np.int64),
                difficult=d["difficult"][keep].astype(bool),
                iscrowd=d["iscrowd"][keep].astype(bool),
                area=d[AREA.name][keep].astype(np.float64) if AREA.name in d else None,
            )
        )
    return records


def classes_of(table: pa.Table) -> list[str]:
    meta = table.schema.metadata or {}
    if b"classes" not in meta:
        raise SchemaError("annotation table has no 'classes' list in its metadata")
    return list(json.loads(meta[b"classes"]))


def validate_table(table: pa.Table, source: str = "<table>") -> None:
    """Check columns, types, splits and box sanity; raise SchemaError naming ``source``."""
    missing = [n for n in SCHEMA.names if n not in table.schema.names]
    if missing:
        raise SchemaError(f"{source}: missing columns {missing}")
    classes = classes_of(table)
    schema = SCHEMA.append(AREA) if AREA.name in table.schema.names else SCHEMA
    try:
        recs = table_to_records(table.select(schema.names).cast(schema.with_metadata(table.schema.metadata)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"{source}: a column has the wrong type ({exc})") from exc
    for r in recs:
        if r.split not in SPLITS:
            raise SchemaError(f"{source}: image {r.image_id!r} has split {r.split!r}, expected one of {SPLITS}")
        if r.width <= 0 or r.height <= 0:
            raise SchemaError(f"{source}: image {r.image_id!r} has size {r.width}x{r.height}")
        if len(r) == 0:
            continue
        b = r.boxes
        if not np.isfinite(b).all() or (b[:, 2] <= b[:, 0]).any() or (b[:, 3] <= b[:, 1]).any():
            raise SchemaError(f"{source}: image {r.image_id!r} has a degenerate or non-finite box")
        if (b[:, 0] < 0).any() or (b[:, 1] < 0).any() or (b[:, 2] > r.width).any() or (b[:, 3] > r.height).any():
            raise SchemaError(f"{source}: image {r.image_id!r} has a box outside its {r.width}x{r.height} image")
        if r.area is not None and not (np.isnan(r.area) | (np.isfinite(r.area) & (r.area > 0))).all():
            raise SchemaError(f"{source}: image {r.image_id!r} has a non-positive or infinite area")
        if (r.labels >= len(classes)).any():
            raise SchemaError(f"{source}: image {r.image_id!r} has a category id beyond the {len(classes)} classes")


def write_table(path: str | os.PathLike[str], table: pa.Table) -> None:
    """Validate and write ``table`` atomically as Parquet."""
    validate_table(table, str(path))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: str | os.PathLike[str]) -> pa.Table:
    """Read and validate an annotation table; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingTableError(f"annotation table not found: {path}")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise SchemaError(f"{path}: not a readable Parquet file ({exc})") from exc
    validate_table(table, str(path))
    return table


def read_records(set_dir: str | os.PathLike[str], split: str | None = None) -> tuple[list[ImageRecord], list[str]]:
    """Records (optionally of one split) and the class list of a set directory."""
    table = read_table(table_path(set_dir))
    recs = table_to_records(table)
    if split is not None:
        recs = [r for r in recs if r.split == split]
    return recs, classes_of(table)

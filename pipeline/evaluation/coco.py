"""COCO metrics behind a small adapter (pycocotools or faster-coco-eval).

Our annotation table is converted to a COCO ground-truth dict:

* image ``id`` = 1..n in sorted ``image_id`` order (the same across LR/SR/HR sets
  of one source), with the table's ``image_id`` kept as ``image_key``;
* ``category_id`` = 0-based class index + 1, ``name`` = class name;
* ``bbox`` from the table's float64 boxes (full precision: an IoU exactly at a
  threshold matches as it does in pycocotools on the same boxes);
* ``area`` = the annotation's own area where the table has one (COCO sources: the
  mask area, as the official evaluation buckets small/medium/large), else the box
  area in the evaluated frame;
* ``iscrowd`` kept; VOC ``difficult`` becomes ``iscrowd=1``.  pycocotools has no
  other per-object ignore flag (it overwrites ``ignore`` with ``iscrowd``), so this
  is how a difficult object is neither TP nor FP.  Unlike VOC, several detections
  may match one crowd box and their IoU is intersection / detection area.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from pipeline.data.boxes import xyxy_to_xywh
from pipeline.data.schema import ImageRecord

Backend = Literal["pycocotools", "faster"]

STAT_NAMES = (
    "coco_ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
    "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large",
)  # fmt: skip


def image_id_map(records: Sequence[ImageRecord]) -> dict[str, int]:
    """Table ``image_id`` -> COCO integer image id (1-based, sorted by ``image_id``)."""
    return {key: i + 1 for i, key in enumerate(sorted({r.image_id for r in records}))}


def records_to_coco(records: Sequence[ImageRecord], classes: Sequence[str]) -> dict[str, Any]:
    """COCO ground-truth dict of ``records`` (boxes in the records' own pixel frame)."""
    ids = image_id_map(records)
    images, anns = [], []
    for r in sorted(records, key=lambda r: ids[r.image_id]):
        images.append(
            {
                "id": ids[r.image_id],
                "image_key": r.image_id,
                "file_name": r.file_name,
                "width": int(r.width),
                "height": int(r.height),
            }
        )
        xywh = xyxy_to_xywh(np.asarray(r.boxes, np.float64))
        area = r.object_areas()
        for j in range(len(r)):
            anns.append({
                "id": len(anns) + 1,
                "image_id": ids[r.image_id],
                "category_id": int(r.labels[j]) + 1,
                "bbox": [float(v) for v in xywh[j]],
                "area": float(area[j]),
                "iscrowd": int(bool(r.iscrowd[j]) or bool(r.difficult[j])),
            })  # fmt: skip
    cats = [{"id": i + 1, "name": name} for i, name in enumerate(classes)]
    return {"images": images, "annotations": anns, "categories": cats}


def _load(backend: Backend) -> tuple[Any, Any]:
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    if backend == "faster":
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster
    raise ValueError(f"unknown COCO backend {backend!r} (expected 'pycocotools' or 'faster')")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the backends' summary tables out of every log: pycocotools ``print``s them,
    faster-coco-eval sends them (and its progress) to its ``logging`` logger at INFO."""
    fce = logging.getLogger("faster_coco_eval")
    level = fce.level
    fce.setLevel(max(level, logging.WARNING))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        fce.setLevel(level)


def coco_evaluate(
    gt: Mapping[str, Any], results: list[dict[str, Any]], backend: Backend = "faster"
) -> dict[str, float]:
    """Bounding-box COCO stats (AP@[.5:.95], AP50, AP75, AP_S/M/L, AR1/10/100, AR_S/M/L).

    Args:
        gt: COCO ground-truth dict (``images``, ``annotations``, ``categories``).
        results: COCO results-format detections (may be empty: AP 0).
        backend: ``faster`` (faster-coco-eval, the default) or ``pycocotools``.

    Neither ``gt`` nor ``results`` is changed: the backends add keys to the entries
    they are given, so they get shallow copies of the entry dicts (no deep copy of
    every box list: that cost +45% at 500k detections).
    Returns:
        ``{name: value}`` for :data:`STAT_NAMES`; -1 where the bucket has no ground
        truth (pycocotools' convention).
    """
    coco_cls, eval_cls = _load(backend)
    with _quiet():
        coco_gt = coco_cls()
        coco_gt.dataset = {**gt, "annotations": [dict(a) for a in gt["annotations"]]}
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes([dict(r) for r in results])
        else:  # loadRes rejects an empty list; no detections is a valid (AP 0) result
            coco_dt = coco_cls()
            coco_dt.dataset = {"images": list(gt["images"]), "categories": list(gt["categories"]), "annotations": []}
            coco_dt.createIndex()
        ev = eval_cls(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = np.asarray(ev.stats, dtype=np.float64)[: len(STAT_NAMES)]
    return {name: float(v) for name, v in zip(STAT_NAMES, stats, strict=False)}

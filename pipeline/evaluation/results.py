"""Detections files in COCO results format: ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``.

``image_id`` and ``category_id`` follow :mod:`pipeline.evaluation.coco` (1-based
ids of the ground-truth dict written beside the file).  Boxes are pixels of the
evaluated frame, rounded to 1/1000 px; scores to 6 decimals.  Metrics are
computed from the file as read back, so the file and the numbers agree.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import write_text
from pipeline.data.boxes import xywh_to_xyxy, xyxy_to_xywh
from pipeline.errors import PipelineError
from pipeline.evaluation.voc import ImageDetections

KEYS = ("image_id", "category_id", "bbox", "score")


class ResultsFormatError(PipelineError, ValueError):
    """A detections file is not valid COCO results format; the message names file and entry."""


def detections_to_results(
    detections: Mapping[str, object], id_map: Mapping[str, int]
) -> list[dict[str, Any]]:
    """``{image_id: Detections}`` (xyxy pixels, 0-based labels) -> COCO results entries."""
    out = []
    for key in sorted(detections, key=lambda k: id_map[k]):
        d = ImageDetections.of(detections[key])
        xywh = xyxy_to_xywh(d.boxes)
        for box, score, label in zip(xywh.tolist(), d.scores.tolist(), d.labels.tolist(), strict=False):
            out.append(
                {
                    "image_id": id_map[key],
                    "category_id": int(label) + 1,
                    "bbox": [round(float(v), 3) for v in box],
                    "score": round(float(score), 6),
                }
            )
    return out


def write_results(path: str | os.PathLike[str], results: list[dict[str, Any]]) -> None:
    """Write a results list atomically (one entry per line, compact)."""
    lines = ",\n".join(json.dumps(r, separators=(",", ":")) for r in results)
    write_text(path, f"[\n{lines}\n]\n" if results else "[]\n")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate_results(
    results: Any, source: str, image_ids: set[int] | None = None, category_ids: set[int] | None = None
) -> list[dict[str, Any]]:
    """Check a parsed results list; raise :class:`ResultsFormatError` naming ``source`` and the entry."""
    if not isinstance(results, list):
        raise ResultsFormatError(
            f"{source}: expected a JSON list of detections, got {type(results).__name__}"
        )
    for i, r in enumerate(results):
        where = f"{source}: entry {i}"
        if not isinstance(r, dict):
            raise ResultsFormatError(f"{where}: expected an object, got {r!r}")
        missing = [k for k in KEYS if k not in r]
        if missing:
            raise ResultsFormatError(f"{where}: missing key(s) {missing}")
        for k in ("image_id", "category_id"):
            if not isinstance(r[k], int) or isinstance(r[k], bool):
                raise ResultsFormatError(f"{where}: {k} must be an integer, got {r[k]!r}")
        box = r["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            raise ResultsFormatError(f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {box!r}")
        if box[2] < 0 or box[3] < 0:
            raise ResultsFormatError(f"{where}: bbox has negative width/height {box!r}")
        if not _is_number(r["score"]):
            raise ResultsFormatError(f"{where}: score must be a finite number, got {r['score']!r}")
        if image_ids is not None and r["image_id"] not in image_ids:
            raise ResultsFormatError(f"{where}: image_id {r['image_id']} is not in the ground truth")
        if category_ids is not None and r["category_id"] not in category_ids:
            raise ResultsFormatError(f"{where}: category_id {r['category_id']} is not a known category")
    return results


def read_results(path: str | os.PathLike[str], gt: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Read and validate a results file (against ``gt``'s image/category ids if given)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detections file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsFormatError(f"{path}: not valid JSON ({exc})") from exc
    img = {im["id"] for im in gt["images"]} if gt is not None else None
    cat = {c["id"] for c in gt["categories"]} if gt is not None else None
    return validate_results(data, str(path), img, cat)


def results_to_detections(
    results: list[dict[str, Any]], id_map: Mapping[str, int]
) -> dict[str, ImageDetections]:
    """COCO results -> ``{image_id: ImageDetections}`` (xyxy pixels, 0-based labels), scores descending."""
    inv = {v: k for k, v in id_map.items()}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        grouped.setdefault(inv[r["image_id"]], []).append(r)
    out = {}
    for key, rs in grouped.items():
        rs = sorted(rs, key=lambda r: -r["score"])
        out[key] = ImageDetections(
            xywh_to_xyxy(np.array([r["bbox"] for r in rs], np.float64)),  # as the COCO backends read them
            np.array([r["score"] for r in rs], np.float64),
            np.array([r["category_id"] - 1 for r in rs], np.int64),
        )
    return out

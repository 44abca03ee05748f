"""COCO instances JSON reading (images, categories in id order, annotations per image)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.data.voc import AnnotationError


@dataclass
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int
    annotations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CocoFile:
    """One parsed instances file.

    Attributes:
        categories: [(category id, name)] sorted by id.
        images: in file order, each with its annotations.
        orphans: annotations whose ``image_id`` names no image (reported by ingest).
    """

    path: Path
    categories: list[tuple[int, str]]
    images: list[CocoImage]
    orphans: list[dict[str, Any]]


def _whole(v: Any) -> int:
    """An id or size as int; ValueError for a JSON true/false or a fractional number (``int()`` would pass them)."""
    if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
        raise ValueError(f"{v!r} is not a whole number")
    return int(v)


def load_coco(path: str | os.PathLike[str]) -> CocoFile:
    """Read a COCO instances file.

    Raises:
        AnnotationError: missing file, invalid JSON, or missing/ill-typed top-level
            ``images``/``annotations``/``categories`` or image fields.  Problems of
            single annotations are left to the caller (they may be skipped).
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: malformed JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: top level is not a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise AnnotationError(f"{path}: missing or non-list '{key}'")
    try:
        cats = sorted((_whole(c["id"]), str(c["name"])) for c in data["categories"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AnnotationError(f"{path}: bad category entry ({exc!r})") from exc
    if len({c for c, _ in cats}) != len(cats):
        raise AnnotationError(f"{path}: duplicate category ids")
    images: dict[int, CocoImage] = {}
    for i, im in enumerate(data["images"]):
        try:
            ci = CocoImage(_whole(im["id"]), str(im["file_name"]), _whole(im["width"]), _whole(im["height"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AnnotationError(f"{path}: images[{i}] lacks a valid id/file_name/width/height ({exc!r})") from exc
        if ci.id in images:
            raise AnnotationError(f"{path}: duplicate image id {ci.id}")
        images[ci.id] = ci
    orphans = []
    for ann in data["annotations"]:
        iid = ann.get("image_id") if isinstance(ann, dict) else None
        img = images.get(iid) if isinstance(iid, (int, float)) and not isinstance(iid, bool) else None
        if img is None:
            orphans.append(ann)
        else:
            img.annotations.append(ann)
    return CocoFile(path, cats, list(images.values()), orphans)

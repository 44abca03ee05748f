"""PASCAL VOC annotation reading: split lists and XML files (parsed with defusedxml)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as ET
from defusedxml import DefusedXmlException

from pipeline.errors import PipelineError

# The 20 VOC classes in the standard (devkit) order.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


class AnnotationError(PipelineError, ValueError):
    """An annotation file is missing or malformed; the message names the file."""


@dataclass
class VocObject:
    name: str
    box: tuple[float, float, float, float]  # VOC 1-based inclusive (xmin, ymin, xmax, ymax)
    difficult: bool


@dataclass
class VocAnnotation:
    filename: str
    width: int
    height: int
    objects: list[VocObject] = field(default_factory=list)


def read_id_list(path: str | os.PathLike[str]) -> list[str]:
    """Image ids of a VOC ``ImageSets/Main/<split>.txt`` (first token per non-empty line)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: split list not found")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    dup = [i for i, n in Counter(ids).items() if n > 1]
    if dup:
        raise AnnotationError(f"{path}: duplicate ids {sorted(dup)[:5]}")
    return ids


def _text(node: Element, tag: str, path: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise AnnotationError(f"{path}: missing <{tag}>")
    return child.text.strip()


def _number(node: Element, tag: str, path: Path) -> float:
    raw = _text(node, tag, path)
    try:
        return float(raw)
    except ValueError:
        raise AnnotationError(f"{path}: <{tag}> is not a number ({raw!r})") from None


def parse_voc_xml(path: str | os.PathLike[str]) -> VocAnnotation:
    """Parse one VOC XML annotation.

    Raises:
        AnnotationError: file missing, not well-formed XML, or a required field
            (size, object name, bndbox coordinate) missing or non-numeric.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, DefusedXmlException) as exc:
        raise AnnotationError(f"{path}: malformed XML ({exc})") from exc
    if root.tag != "annotation":
        raise AnnotationError(f"{path}: root element is <{root.tag}>, expected <annotation>")
    size = root.find("size")
    if size is None:
        raise AnnotationError(f"{path}: missing <size>")
    width, height = _number(size, "width", path), _number(size, "height", path)
    fname = root.findtext("filename", default="").strip()
    objects = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            raise AnnotationError(f"{path}: <object> without <bndbox>")
        box = tuple(_number(bb, k, path) for k in ("xmin", "ymin", "xmax", "ymax"))
        diff = obj.findtext("difficult", default="0").strip()
        objects.append(VocObject(_text(obj, "name", path), box, diff not in ("", "0")))  # type: ignore[arg-type]
    return VocAnnotation(fname, int(width), int(height), objects)

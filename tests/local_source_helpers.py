"""A tiny real COCO-layout source folder (JPEGs + instances JSON) for the local-source tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.data.images import write_image

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
SPLITS = {"train2017": (1, 2), "val2017": (3,)}  # image ids, unique across splits


def _annotation(ann_id: int, image_id: int, x: float) -> dict:
    w, h = 12.0, 10.0
    return {"id": ann_id, "image_id": image_id, "category_id": 1 + 2 * (ann_id % 2),
            "bbox": [x, 8.0, w, h], "area": w * h, "iscrowd": 0}


def make_coco_source(root: Path, size: tuple[int, int] = (64, 48)) -> Path:
    """``root/{train2017,val2017}/*.jpg`` + ``root/annotations/instances_<split>.json``; returns root."""
    rng = np.random.default_rng(0)
    w, h = size
    for split, ids in SPLITS.items():
        images, anns = [], []
        for i in ids:
            name = f"{i:012d}.jpg"
            write_image(root / split / name, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            images.append({"id": i, "file_name": name, "width": w, "height": h})
            anns += [_annotation(10 * i + k, i, 4.0 + 20 * k) for k in range(2)]
        doc = {"images": images, "annotations": anns, "categories": CATEGORIES}
        write_json_file(root / "annotations" / f"instances_{split}.json", doc)
    return root


def write_json_file(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def drop_annotation(root: Path, split: str = "val2017") -> int:
    """Delete the last annotation of ``split``'s JSON in place; returns how many remain."""
    path = root / "annotations" / f"instances_{split}.json"
    doc = json.loads(path.read_text())
    doc["annotations"].pop()
    write_json_file(path, doc)
    return len(doc["annotations"])

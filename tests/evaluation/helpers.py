"""Small builders shared by the evaluation tests."""

from __future__ import annotations

import numpy as np

from pipeline.data.schema import ImageRecord
from pipeline.evaluation.voc import ImageDetections


def rec(
    image_id: str, boxes, labels, difficult=None, iscrowd=None, w: int = 640, h: int = 480
) -> ImageRecord:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = b.shape[0]
    return ImageRecord(
        image_id=image_id, file_name=f"{image_id}.jpg", split="test", width=w, height=h, boxes=b,
        labels=np.asarray(labels, np.int64).reshape(-1),
        difficult=np.zeros(n, bool) if difficult is None else np.asarray(difficult, bool),
        iscrowd=np.zeros(n, bool) if iscrowd is None else np.asarray(iscrowd, bool),
    )  # fmt: skip


def dets(boxes, scores, labels) -> ImageDetections:
    return ImageDetections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float64),
        np.asarray(labels, np.int64),
    )


def grid_fixture(seed: int, n_images: int = 12, n_classes: int = 3):
    """Images with well-separated GT boxes (sizes avoid the 32²/96² bucket edges) and
    jittered/duplicate/false detections with distinct random scores."""
    rng = np.random.default_rng(seed)
    records, detections = [], {}
    for i in range(n_images):
        boxes, labels = [], []
        for cell in range(int(rng.integers(0, 6))):
            x0, y0 = (cell % 3) * 210 + 5, (cell // 3) * 230 + 5
            side = float(rng.choice([13.0, 27.0, 45.0, 70.0, 120.0, 190.0]))
            boxes.append([x0, y0, x0 + side, y0 + side * float(rng.uniform(0.7, 1.0))])
            labels.append(int(rng.integers(0, n_classes)))
        difficult = rng.random(len(boxes)) < 0.15
        r = rec(f"img{i:03d}", boxes, labels, difficult=difficult)
        records.append(r)
        db, ds, dl = [], [], []
        for b, lbl in zip(r.boxes, r.labels, strict=False):
            for _ in range(int(rng.integers(0, 3))):  # 0, 1 or 2 hits (a duplicate is an FP)
                w, h = b[2] - b[0], b[3] - b[1]
                j = rng.normal(0, 0.12, 4) * [w, h, w, h]
                db.append([b[0] + j[0], b[1] + j[1], b[2] + j[2], b[3] + j[3]])
                dl.append(lbl if rng.random() > 0.1 else int(rng.integers(0, n_classes)))
        for _ in range(int(rng.integers(0, 4))):  # background false positives
            x, y, s = rng.uniform(0, 500), rng.uniform(0, 400), rng.uniform(8, 150)
            db.append([x, y, x + s, y + s])
            dl.append(int(rng.integers(0, n_classes)))
        ds = rng.random(len(db)).tolist()
        if db:
            detections[r.image_id] = dets(db, ds, dl)
    return records, detections

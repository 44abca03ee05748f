"""Shared bits of the training tests: a tiny real set, a VOC AP@0.5 on training images and
a one-thread scope for the CPU-heavy ones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torchvision

from pipeline.data.schema import ImageRecord
from pipeline.detector.data import DetectionDataset, collate
from pipeline.detector.transforms import eval_transform

CLASSES = ["red", "green"]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (the previous count is restored).

    The training tests' convolutions are tiny (width <= 0.125): a second thread gains little,
    and while other processes share the 2 cores OpenMP's spin-waiting made them far slower —
    5 Adam steps of test_loss took 26-44 s wall / 12 s CPU on 2 threads vs 2-9 s wall / 1.6-2 s
    CPU on one (load ~7).  One thread also makes the calibrated numbers below reproducible.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_records(n: int, size: int = 96, seed: int = 0) -> list[ImageRecord]:
    """``n`` train images of ``size`` px with 1-2 objects of 20-45 px each (classes alternate)."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        k = 1 + i % 2
        boxes, labels = [], []
        for j in range(k):
            w, h = rng.uniform(20, 45, size=2)
            x0 = rng.uniform(0, size / 2 - w) + j * size / 2
            y0 = rng.uniform(0, size - h)
            boxes.append([x0, y0, x0 + w, y0 + h])
            labels.append((i + j) % 2)
        recs.append(ImageRecord(f"im{i}", f"im{i}.jpg", "train", size, size,
                                np.round(np.array(boxes, np.float32)), np.array(labels, np.int64),
                                np.zeros(k, bool), np.zeros(k, bool)))
    return recs


def voc_ap(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP (VOC2010+) of detections ranked by score."""
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = tp[order].astype(float)
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    rec = ctp / n_gt
    prec = ctp / np.maximum(ctp + cfp, 1e-9)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]).sum())


@torch.no_grad()
def train_map50(model: torch.nn.Module, set_dir: Path, score_thr: float = 0.05) -> float:
    """mAP@0.5 of ``model`` on the train split of ``set_dir`` (det's decode + batched NMS)."""
    model.eval()
    ds = DetectionDataset(set_dir, "train", eval_transform(model.config.input_size))
    images, gt_boxes, gt_labels = collate([ds[i] for i in range(len(ds))])
    cls, box = model(images.float() / 255)
    boxes, scores = model.decode(cls, box)
    per_class: dict[int, list] = {c: [[], [], 0] for c in range(len(ds.classes))}
    for i in range(len(ds)):
        keep_gt = gt_labels[i] > 0
        gtb, gtl = gt_boxes[i][keep_gt], gt_labels[i][keep_gt] - 1
        n_a, n_c = scores.shape[1:]
        s = scores[i].reshape(-1)
        labels = torch.arange(n_c).repeat(n_a)
        b = boxes[i].repeat_interleave(n_c, 0)
        m = s > score_thr
        b, s, labels = b[m], s[m], labels[m]
        keep = torchvision.ops.batched_nms(b, s, labels, 0.45)[:100]
        b, s, labels = b[keep], s[keep], labels[keep]
        for c in per_class:
            per_class[c][2] += int((gtl == c).sum())
            bc, sc = b[labels == c], s[labels == c]
            gc = gtb[gtl == c]
            used = torch.zeros(len(gc), dtype=torch.bool)
            for j in torch.argsort(sc, descending=True):
                hit = False
                if len(gc):
                    iou = torchvision.ops.box_iou(bc[j : j + 1], gc)[0]
                    best = int(iou.argmax())
                    if iou[best] >= 0.5 and not used[best]:
                        used[best] = hit = True
                per_class[c][0].append(hit)
                per_class[c][1].append(float(sc[j]))
    aps = [voc_ap(np.array(tp, bool), np.array(sc), n) for tp, sc, n in per_class.values() if n]
    return float(np.mean(aps))

"""PASCAL VOC detection metrics: per-class AP at IoU 0.5, "difficult" objects ignored.

Follows the VOC devkit (Everingham et al., IJCV 2010, ``VOCevaldet.m``): detections
of a class are ranked by score over the whole set; each takes the ground-truth box
of its class with the highest IoU in its image; IoU ≥ 0.5 with a not-yet-detected
box is a TP, a second hit on the same box is an FP, and a hit on a *difficult*
box is neither.  AP is the VOC2007 11-point interpolation or the VOC2010+ area
under the monotone precision envelope ("all-point").  Deviations, stated:

* boxes are continuous pixel coordinates, so IoU has no VOC "+1" pixel term;
* ``iscrowd`` ground truth (COCO sets) is treated like difficult (ignored);
* score ties rank in a stable order (image order, then detection order);
* a class without (non-ignored) ground truth has AP NaN and is left out of the
  mean (the devkit divides by zero there).

Size buckets (COCO small/medium/large by area in the evaluated frame; a ground-truth
object's own annotation area where the table has one, as in
:mod:`pipeline.evaluation.coco`) reuse the same rule with out-of-bucket ground truth ignored, and an unmatched detection
outside the bucket ignored, as pycocotools does for its area ranges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.data.boxes import MEDIUM_MAX_AREA, SMALL_MAX_AREA, areas
from pipeline.data.schema import ImageRecord

AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, float("inf")),
    "small": (0.0, SMALL_MAX_AREA),
    "medium": (SMALL_MAX_AREA, MEDIUM_MAX_AREA),
    "large": (MEDIUM_MAX_AREA, float("inf")),
}


@dataclass
class ImageDetections:
    """Detections of one image as numpy arrays: boxes (k, 4) xyxy pixels, scores (k,), labels (k,) 0-based.

    Boxes stay float64 when given as float64 (read back from a results file), else float32.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    @staticmethod
    def of(det) -> ImageDetections:  # noqa: ANN001 - any object with boxes/scores/labels (torch or numpy)
        def arr(x, dtype):  # noqa: ANN001
            x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
            return x.astype(dtype, copy=False)

        boxes = det.boxes.detach().cpu().numpy() if hasattr(det.boxes, "detach") else np.asarray(det.boxes)
        return ImageDetections(
            arr(boxes, np.float64 if boxes.dtype == np.float64 else np.float32).reshape(-1, 4),
            arr(det.scores, np.float64).reshape(-1),
            arr(det.labels, np.int64).reshape(-1),
        )


@dataclass
class ClassCurve:
    """Ranked-detection PR curve of one class (``recall``/``precision`` per rank)."""

    recall: np.ndarray
    precision: np.ndarray
    npos: int


@dataclass
class VocResult:
    """Per-class APs (NaN: no ground truth) and their means over classes with ground truth."""

    classes: list[str]
    ap: np.ndarray
    ap_07: np.ndarray
    curves: list[ClassCurve] = field(repr=False, default_factory=list)

    @property
    def map(self) -> float:
        return _nanmean(self.ap)

    @property
    def map_07(self) -> float:
        return _nanmean(self.ap_07)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x[np.isfinite(x)])) if np.isfinite(x).any() else float("nan")


def voc_ap(recall: np.ndarray, precision: np.ndarray, mode: str = "all") -> float:
    """Average precision from a ranked PR curve.

    Args:
        recall, precision: per rank, recall non-decreasing.
        mode: ``"all"`` (VOC2010+: area under the monotone envelope), ``"11"``
            (VOC2007: mean of max precision at recall ≥ 0, 0.1, …, 1) or ``"101"``
            (COCO: envelope sampled at recall 0, 0.01, …, 1, as pycocotools).
    """
    rec = np.asarray(recall, dtype=np.float64)
    prec = np.asarray(precision, dtype=np.float64)
    if mode == "11":
        return float(
            np.mean([prec[rec >= t].max() if (rec >= t).any() else 0.0 for t in np.linspace(0, 1, 11)])
        )
    if mode == "all":
        mrec = np.concatenate([[0.0], rec, [1.0]])
        mpre = np.concatenate([[0.0], prec, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        i = np.nonzero(mrec[1:] != mrec[:-1])[0]
        return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
    if mode == "101":
        if rec.size == 0:
            return 0.0
        env = np.maximum.accumulate(prec[::-1])[::-1]
        idx = np.searchsorted(rec, np.linspace(0.0, 1.0, 101), side="left")
        q = np.zeros(101)
        q[idx < env.size] = env[idx[idx < env.size]]
        return float(q.mean())
    raise ValueError(f"unknown AP mode {mode!r} (expected 'all', '11' or '101')")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (n, 4) and (m, 4) xyxy boxes -> (n, m); zero-area unions give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = areas(a).astype(np.float64)[:, None] + areas(b).astype(np.float64)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _match_image(
    det_boxes: np.ndarray,
    gt_boxes: np.ndarray,
    gt_ignore: np.ndarray,
    det_out_of_range: np.ndarray,
    thr: float,
) -> np.ndarray:
    """VOC matching of one image and class; detections in score order.

    Returns (k,) int8: 1 = TP, 0 = FP, -1 = ignored.
    """
    k = det_boxes.shape[0]
    if gt_boxes.shape[0] == 0:
        return np.where(det_out_of_range, -1, 0).astype(np.int8)
    ov = iou_matrix(det_boxes, gt_boxes)
    best = ov.argmax(1)
    hit = ov[np.arange(k), best] >= thr
    out = np.where(det_out_of_range, -1, 0).astype(np.int8)
    ignored_hit = hit & gt_ignore[best]
    out[ignored_hit] = -1
    counted = hit & ~gt_ignore[best]
    # The first (highest-scoring) detection on a box is the TP, later ones are FPs.
    idx = np.nonzero(counted)[0]
    _, first = np.unique(best[idx], return_index=True)
    out[idx] = np.where(det_out_of_range[idx], -1, 0)
    out[idx[first]] = 1
    return out


@dataclass
class MatchTable:
    """Every detection of a set matched once against the ground truth (VOC rule, one IoU and area range).

    Per class: the detections still counted (ignored ones dropped), in the final rank order, as their
    image index and TP flag; and per image the number of counted ground-truth objects of each class.
    AP for any weighting of the images (a bootstrap resample) follows without re-matching
    (:func:`class_aps`).
    """

    classes: list[str]
    image_ids: list[str]
    det_image: list[np.ndarray]  # per class: (k,) int64 image index, rank order
    det_tp: list[np.ndarray]  # per class: (k,) bool
    npos: np.ndarray  # (n_images, n_classes) int64


def match_detections(
    records: Sequence[ImageRecord],
    detections: Mapping[str, object],
    classes: Sequence[str],
    iou_threshold: float = 0.5,
    area_range: str = "all",
) -> MatchTable:
    """Match ``detections`` (image_id -> boxes/scores/labels) to ``records`` in the same pixel frame.

    Images without an entry in ``detections`` have no detections; detections of images not in
    ``records`` raise ``KeyError``.
    """
    lo, hi = AREA_RANGES[area_range]
    known = {r.image_id for r in records}
    unknown = [k for k in detections if k not in known]
    if unknown:
        raise KeyError(f"detections for {len(unknown)} image(s) not in the ground truth, e.g. {unknown[0]!r}")
    nc = len(classes)
    scores: list[list[np.ndarray]] = [[] for _ in range(nc)]
    flags: list[list[np.ndarray]] = [[] for _ in range(nc)]
    images: list[list[np.ndarray]] = [[] for _ in range(nc)]
    npos = np.zeros((len(records), nc), dtype=np.int64)
    for i, r in enumerate(records):
        gt_area = r.object_areas()
        gt_ign_all = r.difficult | r.iscrowd | (gt_area < lo) | (gt_area >= hi)
        d = ImageDetections.of(detections[r.image_id]) if r.image_id in detections else None
        npos[i] = np.bincount(r.labels[~gt_ign_all], minlength=nc)[:nc]
        if d is None or d.scores.size == 0:
            continue
        if (d.labels < 0).any() or (d.labels >= nc).any():
            raise ValueError(f"image {r.image_id!r}: detection label outside 0..{nc - 1}")
        det_area = areas(d.boxes)
        for c in np.unique(d.labels):
            sel = np.nonzero(d.labels == c)[0]
            sel = sel[np.argsort(-d.scores[sel], kind="stable")]
            g = r.labels == c
            f = _match_image(
                d.boxes[sel],
                r.boxes[g],
                gt_ign_all[g],
                (det_area[sel] < lo) | (det_area[sel] >= hi),
                iou_threshold,
            )
            scores[c].append(d.scores[sel])
            flags[c].append(f)
            images[c].append(np.full(sel.size, i, dtype=np.int64))
    det_image, det_tp = [], []
    for c in range(nc):
        s = np.concatenate(scores[c]) if scores[c] else np.zeros(0)
        f = np.concatenate(flags[c]) if flags[c] else np.zeros(0, np.int8)
        im = np.concatenate(images[c]) if images[c] else np.zeros(0, np.int64)
        order = np.argsort(-s, kind="stable")
        f, im = f[order], im[order]
        keep = f >= 0
        det_image.append(im[keep])
        det_tp.append(f[keep] == 1)
    return MatchTable(list(classes), [r.image_id for r in records], det_image, det_tp, npos)


def class_curve(table: MatchTable, c: int) -> ClassCurve:
    """The ranked PR curve of class ``c`` (all images weighted once)."""
    tp = np.cumsum(table.det_tp[c])
    fp = np.cumsum(~table.det_tp[c])
    npos = int(table.npos[:, c].sum())
    rec = tp / npos if npos > 0 else np.zeros_like(tp, dtype=np.float64)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return ClassCurve(rec.astype(np.float64), prec.astype(np.float64), npos)


def evaluate_voc(
    records: Sequence[ImageRecord],
    detections: Mapping[str, object],
    classes: Sequence[str],
    iou_threshold: float = 0.5,
    area_range: str = "all",
) -> VocResult:
    """VOC AP per class for ``detections`` (image_id -> boxes/scores/labels) against ``records``.

    Both must be in the same pixel frame.  Images without an entry in
    ``detections`` have no detections; detections of images not in ``records``
    raise ``KeyError``.
    """
    return voc_result(match_detections(records, detections, classes, iou_threshold, area_range))


def voc_result(table: MatchTable) -> VocResult:
    """Per-class AP (all-point and 11-point) and PR curves of a matched set."""
    nc = len(table.classes)
    ap = np.full(nc, np.nan)
    ap07 = np.full(nc, np.nan)
    curves = [class_curve(table, c) for c in range(nc)]
    for c, curve in enumerate(curves):
        if curve.npos > 0:
            ap[c] = voc_ap(curve.recall, curve.precision, "all")
            ap07[c] = voc_ap(curve.recall, curve.precision, "11")
    return VocResult(list(table.classes), ap, ap07, curves)

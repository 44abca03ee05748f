"""Straightforward reference post-processing: the paper's Algorithm 1 as a per-box Python loop.

Independent of the library code (plain Python floats, own IoU), used to check the
batched implementation.
"""

from __future__ import annotations

import math

import numpy as np


def iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (
        max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    )
    return inter / union if union > 0 else 0.0


def reference_postprocess(
    boxes: np.ndarray,
    scores: np.ndarray,
    method: str,
    score_threshold: float = 0.01,
    iou_threshold: float = 0.45,
    sigma: float = 0.5,
    top_k: int = 200,
    min_score: float = 0.001,
) -> list[list[tuple[int, int, float]]]:
    """boxes (N, A, 4), scores (N, A, C) -> per image [(class, anchor, score)], best first.

    Bodla et al. 2017, Algorithm 1, per class; hard NMS is the special case that
    removes every box with IoU > t (torchvision's rule).
    """
    out = []
    for i in range(boxes.shape[0]):
        dets: list[tuple[int, int, float]] = []
        for c in range(scores.shape[2]):
            floor = min_score if method != "nms" else -math.inf
            idx = [
                a
                for a in range(boxes.shape[1])
                if scores[i, a, c] > score_threshold and scores[i, a, c] >= floor
            ]
            s = [float(scores[i, a, c]) for a in idx]
            b = [[float(v) for v in boxes[i, a]] for a in idx]
            while idx:
                m = max(range(len(s)), key=lambda j: (s[j], -j))  # first maximum
                am, bm, sm = idx.pop(m), b.pop(m), s.pop(m)
                dets.append((c, am, sm))
                j = 0
                while j < len(idx):
                    o = iou(bm, b[j])
                    if method == "nms":
                        factor = 0.0 if o > iou_threshold else 1.0
                    elif method == "soft_linear":
                        factor = 1.0 - o if o >= iou_threshold else 1.0
                    else:
                        factor = math.exp(-(o * o) / sigma)
                    s[j] *= factor
                    if s[j] < floor or (method == "nms" and factor == 0.0):
                        idx.pop(j), b.pop(j), s.pop(j)
                    else:
                        j += 1
        dets.sort(key=lambda d: -d[2])  # stable: class order, then pick order on ties
        out.append(dets[:top_k])
    return out

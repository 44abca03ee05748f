"""Assigning ground truth to default boxes, batched over images with padded GT.

Both matchers take ``gt_boxes`` (N, G, 4) normalised xyxy and ``gt_labels`` (N, G)
int64 (1..C, 0 = padding) and return per-anchor ``labels`` (N, A) (0 = background)
and ``boxes`` (N, A, 4) (the matched GT; meaningless where ``labels == 0``).  They
contain no Python loop over images or GTs, no host syncs and no data-dependent
shapes, so they trace under ``torch.compile``.  Memory is O(N·G·A) floats: at
batch 32, 50 GTs and 31,232 anchors (``shallow``) each (N, G, A) tensor is 200 MB.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pipeline.detector.coding import box_iou


def valid_gt(gt_boxes: Tensor, gt_labels: Tensor) -> Tensor:
    """(N, G) bool: a real object (label > 0) with positive width and height."""
    wh = gt_boxes[..., 2:] - gt_boxes[..., :2]
    return (gt_labels > 0) & (wh > 0).all(-1)


def _gather_targets(
    gt_boxes: Tensor, gt_labels: Tensor, best_gt: Tensor, positive: Tensor
) -> tuple[Tensor, Tensor]:
    labels = torch.gather(gt_labels, 1, best_gt) * positive
    boxes = torch.gather(gt_boxes, 1, best_gt.unsqueeze(-1).expand(-1, -1, 4))
    return labels, boxes


def _empty(gt_boxes: Tensor, num_anchors: int) -> tuple[Tensor, Tensor]:
    n = gt_boxes.shape[0]
    return (
        torch.zeros(n, num_anchors, dtype=torch.int64, device=gt_boxes.device),
        torch.zeros(n, num_anchors, 4, dtype=gt_boxes.dtype, device=gt_boxes.device),
    )


def match_iou(
    gt_boxes: Tensor, gt_labels: Tensor, anchors_xyxy: Tensor, thresholds: Tensor
) -> tuple[Tensor, Tensor]:
    """SSD matching (Liu et al. 2016, §2.2 "Matching strategy").

    Each GT's best-overlapping anchor is positive (forced, even below threshold);
    every other anchor is positive when its best IoU with any GT is ≥ its own
    threshold (``thresholds`` (A,): 0.5 in SSD; 0.3 on the ``shallow`` conv3_3 level).
    When two GTs force the same anchor the higher GT index wins, as in the
    sequential loop of ssd.pytorch ``match()`` — deterministic via ``scatter_reduce``.

    Args:
        gt_boxes: (N, G, 4); gt_labels: (N, G); anchors_xyxy: (A, 4); thresholds: (A,).
    Returns:
        labels (N, A) int64, boxes (N, A, 4).
    """
    num_anchors = anchors_xyxy.shape[0]
    n, g = gt_labels.shape
    if g == 0:
        return _empty(gt_boxes, num_anchors)
    valid = valid_gt(gt_boxes, gt_labels)
    iou = box_iou(gt_boxes, anchors_xyxy).masked_fill(~valid.unsqueeze(-1), -1.0)  # (N, G, A)
    best_iou, best_gt = iou.max(dim=1)  # (N, A)
    best_anchor = iou.argmax(dim=2)  # (N, G)
    # Padding GTs scatter into a dummy slot A that is sliced off.
    slot = torch.where(valid, best_anchor, torch.full_like(best_anchor, num_anchors))
    gt_index = torch.arange(g, device=gt_labels.device).expand(n, g)
    forced = torch.full((n, num_anchors + 1), -1, dtype=torch.int64, device=gt_labels.device)
    forced = forced.scatter_reduce(1, slot, gt_index, reduce="amax", include_self=True)[:, :num_anchors]
    is_forced = forced >= 0
    best_gt = torch.where(is_forced, forced, best_gt)
    positive = is_forced | (best_iou >= thresholds)
    return _gather_targets(gt_boxes, gt_labels, best_gt, positive)


def match_atss(
    gt_boxes: Tensor,
    gt_labels: Tensor,
    anchors_cxcywh: Tensor,
    anchors_xyxy: Tensor,
    level_bounds: Sequence[tuple[int, int]],
    topk: int,
) -> tuple[Tensor, Tensor]:
    """Adaptive Training Sample Selection (Zhang et al. 2020, Alg. 1), vectorised.

    Per GT and per level, the ``min(topk, anchors in level)`` anchors whose centres
    are nearest (L2) to the GT centre are candidates; the GT's threshold is
    mean + std (unbiased, as the reference code) of the candidates' IoUs;
    candidates with IoU ≥ threshold and centre strictly inside the GT are
    positive.  An anchor positive for several GTs goes to the one with the highest
    IoU.  No best-anchor forcing (as in the paper): a GT whose only good candidates
    have centres outside it gets no positive.

    Args:
        gt_boxes: (N, G, 4); gt_labels: (N, G); anchors_cxcywh / anchors_xyxy: (A, 4);
        level_bounds: per level (start, end) anchor index range (static Python ints);
        topk: k candidates per level (11 in the paper's SSD experiments).
    Returns:
        labels (N, A) int64, boxes (N, A, 4).
    """
    num_anchors = anchors_xyxy.shape[0]
    n, g = gt_labels.shape
    if g == 0:
        return _empty(gt_boxes, num_anchors)
    valid = valid_gt(gt_boxes, gt_labels)
    gt = gt_boxes.float()
    iou = box_iou(gt, anchors_xyxy)  # (N, G, A)
    gcx = (gt[..., 0] + gt[..., 2]).unsqueeze(-1) / 2  # (N, G, 1)
    gcy = (gt[..., 1] + gt[..., 3]).unsqueeze(-1) / 2
    acx, acy = anchors_cxcywh[:, 0].float(), anchors_cxcywh[:, 1].float()
    dist = (gcx - acx) ** 2 + (gcy - acy) ** 2  # (N, G, A), squared L2 (same order)
    candidates = []
    for start, end in level_bounds:  # static, ≤ 7 levels
        k = min(topk, end - start)
        candidates.append(dist[..., start:end].topk(k, dim=-1, largest=False).indices + start)
    cand = torch.cat(candidates, dim=-1)  # (N, G, K)
    cand_iou = torch.gather(iou, 2, cand)
    threshold = cand_iou.mean(-1, keepdim=True) + cand_iou.std(-1, keepdim=True)
    cx, cy = acx[cand], acy[cand]  # (N, G, K)
    inside = (
        torch.stack((cx - gt[..., 0:1], cy - gt[..., 1:2], gt[..., 2:3] - cx, gt[..., 3:4] - cy), -1).amin(-1)
        > 0
    )
    positive = (cand_iou >= threshold) & inside & valid.unsqueeze(-1)
    score = torch.full_like(iou, -1.0).scatter(2, cand, torch.where(positive, cand_iou, -1.0))
    best_score, best_gt = score.max(dim=1)  # (N, A)
    return _gather_targets(gt_boxes, gt_labels, best_gt, best_score >= 0)

"""Box coding for SSD (Liu et al. 2016, eq. 2): (cx, cy, w, h) offsets with variances.

All functions are batched, broadcast over leading dimensions and never sync with
the host, so they run inside ``torch.compile`` graphs and under autocast (inputs
are promoted to float32 first: log/exp of bf16 offsets lose too much precision).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Caffe SSD ``prior_variance`` [0.1, 0.1, 0.2, 0.2]: centre offsets / 0.1, log-size ratios / 0.2.
CENTER_VARIANCE = 0.1
SIZE_VARIANCE = 0.2
# Largest log-size offset decoded (torchvision's ``bbox_xform_clip``): exp() stays finite.
_MAX_LOG_SCALE = float(torch.log(torch.tensor(1000.0 / 16)))


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """(..., 4) xyxy -> (..., 4) cxcywh."""
    lo, hi = boxes[..., :2], boxes[..., 2:]
    return torch.cat(((lo + hi) / 2, hi - lo), dim=-1)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """(..., 4) cxcywh -> (..., 4) xyxy."""
    c, wh = boxes[..., :2], boxes[..., 2:]
    return torch.cat((c - wh / 2, c + wh / 2), dim=-1)


def encode(gt_xyxy: Tensor, anchors_cxcywh: Tensor) -> Tensor:
    """Regression targets of ``gt_xyxy`` w.r.t. anchors.

    Args:
        gt_xyxy: (..., A, 4) matched ground-truth boxes, normalised xyxy.
        anchors_cxcywh: (A, 4) default boxes, normalised cxcywh.
    Returns:
        (..., A, 4) offsets ((gx - ax) / (0.1 aw), (gy - ay) / (0.1 ah),
        log(gw / aw) / 0.2, log(gh / ah) / 0.2).
    """
    g = xyxy_to_cxcywh(gt_xyxy.float())
    a = anchors_cxcywh.float()
    d_c = (g[..., :2] - a[:, :2]) / (CENTER_VARIANCE * a[:, 2:])
    # Unmatched anchors carry a dummy (zero-size) box; clamp keeps log finite, their
    # targets are masked out of the loss.
    d_wh = torch.log(g[..., 2:].clamp(min=1e-6) / a[:, 2:]) / SIZE_VARIANCE
    return torch.cat((d_c, d_wh), dim=-1)


def decode(deltas: Tensor, anchors_cxcywh: Tensor) -> Tensor:
    """Inverse of :func:`encode`: (..., A, 4) offsets -> (..., A, 4) normalised xyxy (unclamped)."""
    d = deltas.float()
    a = anchors_cxcywh.float()
    c = a[:, :2] + d[..., :2] * CENTER_VARIANCE * a[:, 2:]
    wh = a[:, 2:] * torch.exp((d[..., 2:] * SIZE_VARIANCE).clamp(max=_MAX_LOG_SCALE))
    return cxcywh_to_xyxy(torch.cat((c, wh), dim=-1))


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU, batched: (N, G, 4) xyxy x (A, 4) xyxy -> (N, G, A).

    Degenerate boxes (zero area, e.g. padding) give IoU 0, never NaN.
    """
    b1 = boxes1.float().unsqueeze(-1)  # (N, G, 4, 1): coordinates broadcast against A
    b2 = boxes2.float().t()  # (4, A)
    # Coordinate-wise (no (N, G, A, 2) intermediates): matters for ~31k-42k anchors x G.
    iw = (torch.minimum(b1[..., 2, :], b2[2]) - torch.maximum(b1[..., 0, :], b2[0])).clamp(min=0)
    ih = (torch.minimum(b1[..., 3, :], b2[3]) - torch.maximum(b1[..., 1, :], b2[1])).clamp(min=0)
    inter = iw * ih  # (N, G, A)
    area1 = (b1[..., 2, :] - b1[..., 0, :]).clamp(min=0) * (b1[..., 3, :] - b1[..., 1, :]).clamp(min=0)
    area2 = (b2[2] - b2[0]).clamp(min=0) * (b2[3] - b2[1]).clamp(min=0)
    union = area1 + area2 - inter
    return inter / union.clamp(min=1e-12)

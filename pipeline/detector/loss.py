"""SSD multibox loss (Liu et al. 2016, eq. 1) with 3:1 hard-negative mining.

Batched over images, no host syncs, no data-dependent shapes: hard negatives are
chosen by ranking (sort of the per-anchor background loss, then the rank of each
anchor), not by boolean indexing.  Computed in float32 whatever the autocast dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.detector.coding import encode


def multibox_loss(
    cls_logits: Tensor,
    box_deltas: Tensor,
    labels: Tensor,
    matched_boxes: Tensor,
    anchors_cxcywh: Tensor,
    neg_pos_ratio: int = 3,
) -> dict[str, Tensor]:
    """Confidence (softmax CE) + localisation (Smooth-L1) loss, normalised by #positives.

    Negatives per image: the ``neg_pos_ratio · max(P, 1)`` background anchors with the
    highest CE (P = that image's positives; ssd.pytorch / torchvision use
    ``ratio · P``, which gives an image without objects no loss at all — here it still
    contributes its hardest ``ratio`` negatives).  Both terms are divided by
    ``max(total positives in the batch, 1)``.

    Args:
        cls_logits: (N, A, C+1); box_deltas: (N, A, 4); labels: (N, A) int64 (0 = background);
        matched_boxes: (N, A, 4) xyxy; anchors_cxcywh: (A, 4).
    Returns:
        ``{"loss", "cls", "box"}`` scalar tensors.
    """
    logits = cls_logits.float()
    num_anchors = logits.shape[1]
    positive = labels > 0  # (N, A)
    num_pos = positive.sum(1, keepdim=True)  # (N, 1)

    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view_as(labels)
    # Rank background anchors by their CE; positives are pushed to the end.
    neg_loss = ce.detach().masked_fill(positive, float("-inf"))
    order = neg_loss.argsort(dim=1, descending=True)
    rank = order.argsort(dim=1)
    num_neg = torch.clamp(neg_pos_ratio * num_pos.clamp(min=1), max=num_anchors - num_pos)
    negative = (rank < num_neg) & ~positive

    targets = encode(matched_boxes, anchors_cxcywh)
    l1 = F.smooth_l1_loss(box_deltas.float(), targets, reduction="none", beta=1.0).sum(-1)  # (N, A)

    norm = num_pos.sum().clamp(min=1).float()
    cls = torch.where(positive | negative, ce, 0.0).sum() / norm
    box = torch.where(positive, l1, 0.0).sum() / norm  # where(): no NaN leaks from unmatched
    return {"loss": cls + box, "cls": cls, "box": box}

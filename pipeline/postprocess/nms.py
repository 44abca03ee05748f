"""Hard NMS as in SSD (Liu et al. 2016): per class, IoU 0.45, score > 0.01, top 200 per image.

Uses :func:`torchvision.ops.batched_nms` once for the whole batch, with one
category per (image, class) pair, on the same candidates as Soft-NMS.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from pipeline.postprocess.candidates import select_candidates
from pipeline.postprocess.config import PostprocessConfig
from pipeline.postprocess.detections import Detections


def hard_nms(boxes: Tensor, scores: Tensor, cfg: PostprocessConfig) -> list[Detections]:
    """Hard NMS over a batch.

    Args:
        boxes: (N, A, 4) xyxy; scores: (N, A, C) class scores without background.
    Returns:
        N :class:`Detections` of at most ``cfg.top_k``, sorted by score.
    """
    n, _, c = scores.shape
    boxes = boxes.float()
    cand = select_candidates(scores, cfg.score_threshold, cfg.candidates_per_class)
    k = cand.score.shape[2]
    if k == 0:
        return [Detections.empty(boxes.device) for _ in range(n)]
    img, cls, pos = cand.valid.nonzero(as_tuple=True)
    anchor = cand.anchor[img, cls, pos]
    score = cand.score[img, cls, pos]
    box = boxes[img, anchor]
    kept = batched_nms(box, score, img * c + cls, cfg.iou_threshold)  # sorted by score, descending
    # Stable sort by image keeps the score order within each image.
    kept = kept[img[kept].sort(stable=True).indices]
    img_k = img[kept]
    counts = torch.bincount(img_k, minlength=n)
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(kept.numel(), device=kept.device) - first[img_k]
    kept = kept[rank < cfg.top_k]
    per_image = torch.clamp(counts, max=cfg.top_k).tolist()
    parts = kept.split(per_image)
    return [Detections(box[p], score[p], cls[p]) for p in parts]

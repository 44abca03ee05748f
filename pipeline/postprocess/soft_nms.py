"""Soft-NMS (Bodla et al., "Soft-NMS — Improving Object Detection With One Line of
Code", ICCV 2017), batched over images and classes.

Algorithm 1 of the paper, per class: repeatedly pick the highest-scoring box M,
output it, and decay every remaining box b by f(IoU(M, b)):

* linear (the thesis' thresholded form): s·(1 − IoU) if IoU ≥ t, else s;
* Gaussian: s·exp(−IoU² / σ) for every b;

boxes whose score falls below a floor are dropped.  The greedy loop is inherently
sequential in the number of boxes K of a group, but independent across groups.
Here every (image, class) pair is one group: candidates are padded to (G, K), the
(K × K) IoU matrix is computed once per group, and the K greedy steps run as a
loop whose every step is vectorised over all G groups (argmax, gather one IoU row,
decay, mask).  There is no per-box Python work per group and no host sync inside
the loop; the loop has K = (largest group) steps, capped by
``PostprocessConfig.candidates_per_class``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pipeline.postprocess.candidates import Candidates, select_candidates, top_k_per_image
from pipeline.postprocess.config import PostprocessConfig
from pipeline.postprocess.detections import Detections

# Groups are processed in chunks so that the (G, K, K) IoU tensor stays below this many elements.
_MAX_IOU_ELEMENTS = 1 << 26


def pairwise_iou(boxes: Tensor) -> Tensor:
    """IoU of every pair within each group: (G, K, 4) xyxy -> (G, K, K).

    Degenerate (zero-area) pairs give IoU 0 instead of 0/0.
    """
    x0, y0, x1, y1 = boxes.unbind(-1)  # (G, K) each
    area = (x1 - x0).clamp(min=0) * (y1 - y0).clamp(min=0)
    iw = (
        torch.minimum(x1[:, :, None], x1[:, None, :]) - torch.maximum(x0[:, :, None], x0[:, None, :])
    ).clamp_(min=0)
    ih = (
        torch.minimum(y1[:, :, None], y1[:, None, :]) - torch.maximum(y0[:, :, None], y0[:, None, :])
    ).clamp_(min=0)
    inter = iw.mul_(ih)
    union = area[:, :, None] + area[:, None, :] - inter
    return torch.where(
        union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter)
    )


def soft_nms_groups(
    boxes: Tensor, scores: Tensor, linear: bool, iou_threshold: float, sigma: float, min_score: float
) -> tuple[Tensor, Tensor]:
    """Greedy Soft-NMS on padded groups.

    Args:
        boxes: (G, K, 4) xyxy.
        scores: (G, K) scores; entries < ``min_score`` (e.g. padding = -1) are not boxes.
    Returns:
        ``pick`` (G, K) int64 position picked at step k and ``picked_score`` (G, K), the
        picked box's decayed score at that step; entries with score < ``min_score``
        are not detections (the group had run out of boxes).
    """
    g, k = scores.shape
    iou = pairwise_iou(boxes)
    cur = scores.clone()
    alive = cur >= min_score
    picks = torch.empty((g, k), dtype=torch.int64, device=scores.device)
    picked = torch.empty((g, k), dtype=scores.dtype, device=scores.device)
    dead = cur.new_full((), -1.0)
    for step in range(k):
        m = torch.where(alive, cur, dead).argmax(dim=1, keepdim=True)  # (G, 1): first maximum = lowest anchor
        picks[:, step : step + 1] = m
        picked[:, step : step + 1] = torch.where(alive.gather(1, m), cur.gather(1, m), dead)
        alive.scatter_(1, m, False)
        ov = iou.gather(1, m[:, :, None].expand(-1, 1, k)).squeeze(1)  # (G, K) IoU of M with its group
        if linear:
            factor = torch.where(ov >= iou_threshold, 1.0 - ov, torch.ones_like(ov))
        else:
            factor = torch.exp(ov * ov / -sigma)
        cur = cur * factor
        alive &= cur >= min_score
    return picks, picked


def soft_nms(boxes: Tensor, scores: Tensor, cfg: PostprocessConfig) -> list[Detections]:
    """Soft-NMS over a batch.

    Args:
        boxes: (N, A, 4) xyxy (any consistent frame, e.g. normalised [0, 1]).
        scores: (N, A, C) class scores without background.
        cfg: ``method`` must be ``soft_linear`` or ``soft_gaussian``.
    Returns:
        N :class:`Detections`, at most ``cfg.top_k`` each, sorted by decayed score.
    """
    if cfg.method not in ("soft_linear", "soft_gaussian"):
        raise ValueError(f"soft_nms got method {cfg.method!r}")
    n, _, c = scores.shape
    boxes = boxes.float()
    cand = select_candidates(scores, cfg.score_threshold, cfg.candidates_per_class, floor=cfg.min_score)
    k = cand.score.shape[2]
    if k == 0:
        return [Detections.empty(boxes.device) for _ in range(n)]
    picked_anchor, picked_score = _run_groups(boxes, cand, cfg)  # (N, C, K) each
    flat_score = picked_score.reshape(n, c * k)
    order, keep, counts = top_k_per_image(flat_score, cfg.top_k, cfg.min_score)
    anchor = picked_anchor.reshape(n, c * k).gather(1, order)
    label = order // k
    score = flat_score.gather(1, order)
    box = boxes.gather(1, anchor[..., None].expand(-1, -1, 4))
    out = []
    for i, cnt in enumerate(counts.tolist()):
        out.append(Detections(box[i, :cnt], score[i, :cnt], label[i, :cnt]))
    return out


def _run_groups(boxes: Tensor, cand: Candidates, cfg: PostprocessConfig) -> tuple[Tensor, Tensor]:
    """Run :func:`soft_nms_groups` over the non-empty (image, class) groups.

    Groups are binned by candidate count (powers of two, at least 8) so a group of 5
    boxes does not pay for the 400 steps of the largest one; total work is about
    sum over groups of K_g² instead of G·K_max².  Bins are processed in
    memory-bounded chunks.  One host sync (the counts) before the loops.
    """
    n, c, k = cand.score.shape
    anchor = cand.anchor.reshape(n * c, k)
    score = cand.score.reshape(n * c, k)
    image = torch.arange(n, device=boxes.device).repeat_interleave(c)
    counts = cand.valid.reshape(n * c, k).sum(1)
    out_anchor = torch.zeros_like(anchor)
    out_score = torch.full_like(score, -1.0)
    linear = cfg.method == "soft_linear"
    counts_host = counts.tolist()
    bins: dict[int, list[int]] = {}
    for gi, cnt in enumerate(counts_host):
        if cnt:
            bins.setdefault(min(k, max(8, 1 << (cnt - 1).bit_length())), []).append(gi)
    for kb, members in sorted(bins.items()):
        members_t = torch.tensor(members, device=boxes.device)
        chunk = max(1, _MAX_IOU_ELEMENTS // (kb * kb))
        for start in range(0, len(members), chunk):
            gi = members_t[start : start + chunk]
            a = anchor[gi, :kb]  # valid candidates come first in every group
            b = boxes[image[gi][:, None], a]  # (g, kb, 4)
            pick, picked = soft_nms_groups(
                b, score[gi, :kb], linear, cfg.iou_threshold, cfg.sigma, cfg.min_score
            )
            out_anchor[gi, :kb] = a.gather(1, pick)
            out_score[gi, :kb] = picked
    return out_anchor.reshape(n, c, k), out_score.reshape(n, c, k)

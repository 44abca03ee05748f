"""Soft-NMS (Bodla et al., "Soft-NMS — Improving Object Detection With One Line of
Code", ICCV 2017), batched over images and classes.

Algorithm 1 of the paper, per class: repeatedly pick the highest-scoring box M,
output it, and decay every remaining box b by f(IoU(M, b)):

* linear (the thesis' thresholded form): s·(1 − IoU) if IoU ≥ t, else s;
* Gaussian: s·exp(−IoU² / σ) for every b;

boxes whose score falls below a floor are dropped.  The greedy loop is inherently
sequential in the number of boxes K of a group, but independent across groups;
every (image, class) pair is one group.  Two backends share the candidates and
the output layout:

* ``fused`` (CUDA): one Triton program per group runs the whole loop in registers,
  one launch per batch, no host sync (:mod:`pipeline.postprocess.soft_nms_triton`).
  Before its first use in a process (per device) it is checked against the torch
  loop on a fixed small case (:func:`check_fused`); if they differ, or the kernel
  raises, one warning is logged and the torch loop serves the rest of the process.
* ``torch`` (CPU, and CUDA without Triton): groups are binned by size and padded
  to (G, K); the (K × K) decay matrix is computed once, and the greedy steps run
  as a loop whose every step is four ops vectorised over all G groups (max,
  gather one decay row, multiply).  At most ``top_k`` steps: a group's picks come
  in non-increasing score order, so a later one can never make the image's top-k.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from pipeline.postprocess import soft_nms_triton
from pipeline.postprocess.candidates import Candidates, select_candidates, top_k_per_image
from pipeline.postprocess.config import PostprocessConfig
from pipeline.postprocess.detections import Detections

Backend = Literal["auto", "torch", "fused"]
GroupRunner = Callable[[Tensor, Candidates, PostprocessConfig], tuple[Tensor, Tensor]]

log = logging.getLogger(__name__)

# Groups are processed in chunks so that the (G, K, K) IoU tensor stays below this many elements.
_MAX_IOU_ELEMENTS = 1 << 26
# The step loop checks (one host sync on CUDA) this often whether every group is exhausted.
_EXHAUSTED_CHECK_EVERY = 16


def pairwise_iou(boxes: Tensor) -> Tensor:
    """IoU of every pair within each group: (G, K, 4) xyxy -> (G, K, K).

    Degenerate (zero-area) pairs give IoU 0 instead of 0/0.  In-place ops: this
    (G, K, K) work dominates Soft-NMS on the CPU.
    """
    x0, y0, x1, y1 = boxes.unbind(-1)  # (G, K) each
    area = (x1 - x0).clamp_(min=0).mul_((y1 - y0).clamp_(min=0))
    # clamp(max=tensor) is min(); on the CPU it is ~5x faster than torch.minimum on broadcast operands.
    iw = x1[:, None, :].clamp(max=x1[:, :, None]).sub_(x0[:, None, :].clamp(min=x0[:, :, None]))
    ih = y1[:, None, :].clamp(max=y1[:, :, None]).sub_(y0[:, None, :].clamp(min=y0[:, :, None]))
    inter = iw.clamp_(min=0).mul_(ih.clamp_(min=0))
    union = (area[:, :, None] + area[:, None, :]).sub_(inter)  # >= 0: inter <= each area
    return inter.div_(union).nan_to_num_(0.0)  # 0/0 (both boxes empty) -> 0


def decay_matrix(iou: Tensor, linear: bool, iou_threshold: float, sigma: float) -> Tensor:
    """Soft-NMS decay factor of box j when box i is picked: (G, K, K) IoU -> (G, K, K).

    The diagonal is 0, so a picked box's own score drops to 0 (below any positive floor).
    """
    if linear:
        decay = torch.rsub(iou, 1.0).masked_fill_(iou < iou_threshold, 1.0)
    else:
        decay = iou.square().div_(-sigma).exp_()
    decay.diagonal(dim1=1, dim2=2).zero_()
    return decay


def soft_nms_groups(
    boxes: Tensor,
    scores: Tensor,
    linear: bool,
    iou_threshold: float,
    sigma: float,
    min_score: float,
    max_steps: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Greedy Soft-NMS on padded groups.

    Args:
        boxes: (G, K, 4) xyxy.
        scores: (G, K) scores; entries < ``min_score`` (e.g. padding = -1) are not boxes.
        min_score: the floor, > 0.
        max_steps: stop after this many picks per group (e.g. the per-image top-k:
            a group's picks come in non-increasing score order, so a later pick can
            never make an image's top-k).
    Returns:
        ``pick`` (G, K) int64 position picked at step k and ``picked_score`` (G, K), the
        picked box's decayed score at that step; entries with score < ``min_score``
        are not detections (the group had run out of boxes).

    Each step is four vectorised ops over all groups (max, row offset, gather one
    decay row, multiply): scores only ever shrink, so a box below the floor can
    never be picked while a box above it remains, and needs no separate mask.
    """
    g, k = scores.shape
    steps = k if max_steps is None else min(k, max_steps)
    rows = decay_matrix(pairwise_iou(boxes), linear, iou_threshold, sigma).view(g * k, k)
    row_base = torch.arange(g, device=scores.device) * k
    cur = scores.clone()
    picks: list[Tensor] = []
    picked: list[Tensor] = []
    for step in range(steps):
        best, m = cur.max(dim=1)  # first maximum = lowest anchor on ties
        picks.append(m)
        picked.append(best)
        cur.mul_(rows.index_select(0, row_base + m))
        if step % _EXHAUSTED_CHECK_EVERY == _EXHAUSTED_CHECK_EVERY - 1 and not bool(
            (best >= min_score).any()
        ):
            break  # every group has run out of boxes above the floor
    pick = torch.zeros((g, k), dtype=torch.int64, device=scores.device)
    score = torch.full((g, k), -1.0, dtype=scores.dtype, device=scores.device)
    pick[:, : len(picks)] = torch.stack(picks, 1)
    score[:, : len(picked)] = torch.stack(picked, 1)
    return pick, score


def soft_nms(
    boxes: Tensor, scores: Tensor, cfg: PostprocessConfig, backend: Backend = "auto"
) -> list[Detections]:
    """Soft-NMS over a batch.

    Args:
        boxes: (N, A, 4) xyxy (any consistent frame, e.g. normalised [0, 1]).
        scores: (N, A, C) class scores without background.
        cfg: ``method`` must be ``soft_linear`` or ``soft_gaussian``.
        backend: ``fused`` (one Triton kernel, :mod:`.soft_nms_triton`), ``torch``
            (the step loop below) or ``auto`` (fused on CUDA when Triton is there).
    Returns:
        N :class:`Detections`, at most ``cfg.top_k`` each, sorted by decayed score.
    """
    if cfg.method not in ("soft_linear", "soft_gaussian"):
        raise ValueError(f"soft_nms got method {cfg.method!r}")
    if cfg.min_score <= 0.0:
        raise ValueError(f"Soft-NMS needs a score floor min_score > 0, got {cfg.min_score}")
    fused = _use_fused(backend, boxes.device, cfg.candidates_per_class) and _fused_trusted(boxes.device)
    n, _, c = scores.shape
    boxes = boxes.float()
    cand = select_candidates(scores, cfg.score_threshold, cfg.candidates_per_class, floor=cfg.min_score)
    k = cand.score.shape[2]
    if k == 0:
        return [Detections.empty(boxes.device) for _ in range(n)]
    run = _run_groups_fused if fused else _run_groups
    picked_anchor, picked_score = run(boxes, cand, cfg)  # (N, C, K) each
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


def _use_fused(backend: Backend, device: torch.device, candidates_per_class: int) -> bool:
    if backend == "torch":
        return False
    if backend not in ("auto", "fused"):
        raise ValueError(f"Soft-NMS backend must be auto, torch or fused, got {backend!r}")
    fits = candidates_per_class <= soft_nms_triton.MAX_CANDIDATES
    if backend == "auto":
        return device.type == "cuda" and fits and soft_nms_triton.available(device)
    if not soft_nms_triton.available(device):
        raise RuntimeError(
            f"Soft-NMS backend 'fused' needs CUDA (or TRITON_INTERPRET=1 on the CPU) and Triton; got {device}"
        )
    if not fits:
        raise ValueError(
            f"Soft-NMS backend 'fused' keeps a group in registers: candidates_per_class must be "
            f"<= {soft_nms_triton.MAX_CANDIDATES}, got {candidates_per_class}"
        )
    return True


def _self_check_case(device: torch.device) -> tuple[Tensor, Tensor]:
    """A fixed batch: 2 images x 24 anchors x 2 classes, overlapping boxes, distinct scores.

    Small, so that the check costs little under Triton's interpreter; its picks never
    hinge on float32 rounding (tests/postprocess/test_soft_nms_selfcheck.py).
    """
    n, a, c = 2, 24, 2
    gen = torch.Generator().manual_seed(20170)
    xy = torch.rand(n, a, 2, generator=gen) * 0.6
    boxes = torch.cat([xy, xy + 0.1 + torch.rand(n, a, 2, generator=gen) * 0.3], -1)
    scores = torch.randperm(n * a * c, generator=gen).float().add_(1.0).div_(n * a * c + 1).view(n, a, c)
    return boxes.to(device), scores.to(device)


def check_fused(fused: GroupRunner, reference: GroupRunner, device: torch.device) -> str | None:
    """Run ``fused`` and ``reference`` (same signature as :func:`_run_groups`) on a fixed case.

    Returns None when both pick the same boxes in the same order with the same decayed
    scores (to float32 rounding) for linear and Gaussian Soft-NMS, else what differed.
    """
    boxes, scores = _self_check_case(device)
    for method in ("soft_linear", "soft_gaussian"):
        cfg = PostprocessConfig(method=method, iou_threshold=0.3, top_k=50)
        cand = select_candidates(scores, cfg.score_threshold, cfg.candidates_per_class, floor=cfg.min_score)
        ref_anchor, ref_score = reference(boxes, cand, cfg)
        try:
            anchor, score = fused(boxes, cand, cfg)
        except Exception as exc:  # noqa: BLE001 - any failure of the kernel means: do not use it
            return f"{method}: it raised {type(exc).__name__}: {exc}"
        valid = ref_score >= cfg.min_score
        if anchor.shape != ref_anchor.shape or not torch.equal(valid, score >= cfg.min_score):
            return f"{method}: different number of picks"
        if not torch.equal(anchor[valid], ref_anchor[valid]):
            return f"{method}: different picks"
        if not torch.allclose(score[valid], ref_score[valid], rtol=1e-5, atol=1e-6):
            err = (score[valid] - ref_score[valid]).abs().max().item()
            return f"{method}: decayed scores differ by up to {err:.3g}"
    return None


_FUSED_TRUSTED: dict[str, bool] = {}


def _fused_trusted(device: torch.device) -> bool:
    """Whether the fused kernel passed :func:`check_fused` on ``device`` (checked once per process)."""
    key = str(device)
    if key not in _FUSED_TRUSTED:
        problem = check_fused(_run_groups_fused, _run_groups, device)
        if problem is not None:
            log.warning("fused Soft-NMS kernel disagrees with the torch loop on %s (%s); using the torch loop "
                        "for the rest of this process", key, problem)
        _FUSED_TRUSTED[key] = problem is None
    return _FUSED_TRUSTED[key]


def _group_layout(boxes: Tensor, cand: Candidates) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Flatten (image, class) groups: anchor (G, K), score (G, K), count (G,), image (G,)."""
    n, c, k = cand.score.shape
    image = torch.arange(n, device=boxes.device).repeat_interleave(c)
    return (
        cand.anchor.reshape(n * c, k),
        cand.score.reshape(n * c, k),
        cand.valid.reshape(n * c, k).sum(1),
        image,
    )


def _run_groups_fused(boxes: Tensor, cand: Candidates, cfg: PostprocessConfig) -> tuple[Tensor, Tensor]:
    """All groups in one Triton launch, no host sync."""
    anchor, score, counts, image = _group_layout(boxes, cand)
    pick, picked = soft_nms_triton.soft_nms_groups_fused(
        boxes,
        anchor,
        score,
        counts,
        image,
        cfg.method == "soft_linear",
        cfg.iou_threshold,
        cfg.sigma,
        cfg.top_k,
    )
    return anchor.gather(1, pick).reshape(cand.score.shape), picked.reshape(cand.score.shape)


def _run_groups(boxes: Tensor, cand: Candidates, cfg: PostprocessConfig) -> tuple[Tensor, Tensor]:
    """Run :func:`soft_nms_groups` over the non-empty (image, class) groups.

    Groups are binned by candidate count (powers of two) and each bin is padded to
    its largest count only, so a group of 5 boxes does not pay for the 400 steps of
    the largest one; total work is about the sum over groups of K_g² instead of
    G·K_max².  Bins are processed in memory-bounded chunks.  One host sync (the
    counts) before the loops.
    """
    n, c, k = cand.score.shape
    anchor, score, counts, image = _group_layout(boxes, cand)
    out_anchor = torch.zeros_like(anchor)
    out_score = torch.full_like(score, -1.0)
    linear = cfg.method == "soft_linear"
    bins: dict[int, list[int]] = {}
    for gi, cnt in enumerate(counts.tolist()):
        if cnt:
            bins.setdefault((cnt - 1).bit_length(), []).append(gi)
    for members in bins.values():
        members_t = torch.tensor(members, device=boxes.device)
        kb = int(counts[members_t].max())
        chunk = max(1, _MAX_IOU_ELEMENTS // (kb * kb))
        for start in range(0, len(members), chunk):
            gi = members_t[start : start + chunk]
            a = anchor[gi, :kb]  # valid candidates come first in every group
            b = boxes[image[gi][:, None], a]  # (g, kb, 4)
            pick, picked = soft_nms_groups(
                b, score[gi, :kb], linear, cfg.iou_threshold, cfg.sigma, cfg.min_score, cfg.top_k
            )
            out_anchor[gi, :kb] = a.gather(1, pick)
            out_score[gi, :kb] = picked
    return out_anchor.reshape(n, c, k), out_score.reshape(n, c, k)

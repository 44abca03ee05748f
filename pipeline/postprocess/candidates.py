"""Shared pre-filter: score threshold and a per-(image, class) candidate cap.

Both hard NMS and Soft-NMS start from the same candidates, so the methods are
compared on identical inputs (SSD: score > 0.01, at most 400 per class).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Candidates:
    """Candidates padded per (image, class) group, ordered by anchor index.

    Attributes:
        anchor: (N, C, K) int64 anchor index of each candidate (padding: 0).
        score: (N, C, K) float32 class score (padding: -1).
        valid: (N, C, K) bool.
    """

    anchor: Tensor
    score: Tensor
    valid: Tensor


def check_inputs(boxes: Tensor, scores: Tensor) -> None:
    """Validate shapes of decoded ``boxes`` (N, A, 4) and ``scores`` (N, A, C)."""
    if boxes.dim() != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (N, A, 4), got {tuple(boxes.shape)}")
    if scores.dim() != 3 or scores.shape[:2] != boxes.shape[:2]:
        raise ValueError(
            f"scores must have shape (N, A, C) matching boxes {tuple(boxes.shape[:2])}, got {tuple(scores.shape)}"
        )


def select_candidates(scores: Tensor, score_threshold: float, cap: int, floor: float = 0.0) -> Candidates:
    """Keep the top ``cap`` anchors with score > ``score_threshold`` (and ≥ ``floor``) per group.

    Args:
        scores: (N, A, C) float class probabilities (no background column).
    Returns:
        Candidates with K = the largest per-group count (one host sync), sorted by
        anchor index so ties break towards the lower anchor index, as a per-box loop
        over anchors in order would.
    """
    n, a, c = scores.shape
    per_class = scores.float().transpose(1, 2)  # (N, C, A)
    k0 = min(cap, a)
    if k0 == 0 or n == 0 or c == 0:
        empty = per_class.new_zeros((n, c, 0))
        return Candidates(empty.long(), empty, empty.bool())
    val, idx = per_class.topk(k0, dim=2, sorted=True)  # (N, C, k0), descending
    valid = (val > score_threshold) & (val >= floor)
    k = int(valid.sum(-1).max().item()) if valid.numel() else 0
    val, idx, valid = val[..., :k], idx[..., :k], valid[..., :k]
    # Re-order each group by anchor index (invalid ones last).
    key = torch.where(valid, idx, idx.new_full((), a) + idx)
    key, order = key.sort(dim=2)
    idx = idx.gather(2, order)
    val = val.gather(2, order)
    valid = valid.gather(2, order)
    val = torch.where(valid, val, val.new_full((), -1.0))
    return Candidates(torch.where(valid, idx, torch.zeros_like(idx)), val, valid)


def top_k_per_image(score: Tensor, top_k: int, min_score: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per image, the ``top_k`` highest entries ≥ ``min_score`` of a flat (N, M) score table.

    Ties keep the earlier entry (stable sort), so the result is deterministic.
    Returns ``(order (N, k), keep (N, k) bool, counts list)``.
    """
    k = min(top_k, score.shape[1])
    sorted_score, order = score.sort(dim=1, descending=True, stable=True)
    order, sorted_score = order[:, :k], sorted_score[:, :k]
    keep = sorted_score >= min_score
    return order, keep, keep.sum(1)

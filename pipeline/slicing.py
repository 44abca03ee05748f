"""Sliced detection for large images (SAHI, Akyon et al. 2022): windows, crops, merging across tiles.

A large image is cut into ``size`` x ``size`` windows whose starts step by
``size - round(overlap * size)`` pixels, the last window aligned to the image end (the
SR stage's :func:`pipeline.sr.infer.tile_starts`, the same grid as SAHI's
``get_slice_bboxes``); an image no larger than ``size`` is one window.  Each window
is warped to the detector's S x S input like a whole image, so a tile at
``size`` ~ S shows objects at their native scale instead of shrunk by the image's
``side / S``.  Tile boxes (normalised to their window) are mapped back with
:func:`to_image_frame` and merged across tiles by :func:`merge_tiles`:

* ``nms`` / ``softnms``: the project's own post-processing (:mod:`pipeline.postprocess`)
  run again over the union of the tiles' detections;
* ``greedy``: SAHI's greedy non-maximum merging (``GreedyNMMPostprocess``, its default
  for sliced prediction): per class, in score order, a kept box absorbs every later
  box whose intersection over the smaller box (IOS) with it is >= ``merge_threshold``
  (0.5 in SAHI); the kept box grows to the union, its score stays the highest.  It merges
  every detection above the post-processing score threshold, so use it with a confidence
  floor as SAHI does (``predict --score``): at the evaluation's 0.01 the boxes grow into the
  union of their low-score neighbours (README "Predict, sliced inference and export").

SAHI itself is not imported: its slicing and merging work on per-tile Python
object lists and pull shapely/fire, while the core must run with torch alone; the
greedy merge here is checked against SAHI's in the tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from pipeline.config import require
from pipeline.postprocess import Detections, PostprocessConfig, postprocess
from pipeline.sr.infer import tile_starts

Merge = Literal["nms", "softnms", "greedy"]
Window = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels


@dataclass(frozen=True)
class SliceConfig:
    """Params ``evaluate.slice`` / ``predict --slice``.

    Attributes:
        size: window side in image pixels (about the detector's input size keeps objects at native scale).
        overlap: fraction of ``size`` shared by neighbouring windows, in [0, 1).
        merge: ``nms`` (default), ``softnms`` (the method's own settings) or ``greedy`` (SAHI greedy NMM).
        merge_threshold: IOS at which ``greedy`` merges two boxes (SAHI: 0.5).
        full_image: also run the whole image (warped to S x S) and merge its boxes in, for large objects.
    """

    size: int = 300
    overlap: float = 0.2
    merge: Merge = "nms"
    merge_threshold: float = 0.5
    full_image: bool = False

    def validate(self, prefix: str = "slice") -> None:
        require(self.size >= 16, f"{prefix}.size", f"must be >= 16 px, got {self.size}")
        require(0.0 <= self.overlap < 1.0, f"{prefix}.overlap", f"must be in [0, 1), got {self.overlap}")
        require(self.merge in ("nms", "softnms", "greedy"), f"{prefix}.merge",
                f"must be nms | softnms | greedy, got {self.merge!r}")
        require(0.0 < self.merge_threshold <= 1.0, f"{prefix}.merge_threshold", "must be in (0, 1]")


def windows(width: int, height: int, size: int, overlap: float, full_image: bool = False) -> list[Window]:
    """Windows covering a ``width`` x ``height`` image (row-major), plus the whole image if ``full_image``."""
    step_overlap = min(int(round(overlap * size)), size - 1)
    xs, ys = tile_starts(width, size, step_overlap), tile_starts(height, size, step_overlap)
    tw, th = min(size, width), min(size, height)
    out = [(x, y, x + tw, y + th) for y in ys for x in xs]
    if full_image and out != [(0, 0, width, height)]:
        out.append((0, 0, width, height))
    return out


def crop_windows(image: np.ndarray, wins: Sequence[Window], input_size: int) -> Tensor:
    """(H, W, 3) uint8 image -> (T, 3, S, S) uint8 tensor of its windows, each warped to S x S.

    Same resize as evaluation's whole images (OpenCV bilinear), so one window covering the
    whole image is exactly the unsliced input.
    """
    import cv2  # here, not at import: SliceConfig is read by params parsing, which needs no OpenCV

    crops = [cv2.resize(image[y0:y1, x0:x1], (input_size, input_size), interpolation=cv2.INTER_LINEAR)
             for x0, y0, x1, y1 in wins]
    return torch.from_numpy(np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2)))


def window_frames(wins: Sequence[Window]) -> Tensor:
    """(T, 4) float32 ``[x0, y0, w, h]`` of each window: what :func:`to_image_frame` needs."""
    return torch.tensor([[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in wins], dtype=torch.float32)


def to_image_frame(boxes: Tensor, frames: Tensor) -> Tensor:
    """Normalised boxes (N, A, 4) of N windows -> image pixels: ``x = x0 + bx * w``, ``y = y0 + by * h``.

    ``frames`` (N, 4) ``[x0, y0, w, h]``; a whole image is the frame ``[0, 0, W, H]``.
    """
    frames = frames.to(boxes.device, boxes.dtype)
    offset, scale = frames[:, None, :2].repeat(1, 1, 2), frames[:, None, 2:].repeat(1, 1, 2)
    return boxes * scale + offset


def merge_tiles(dets: Sequence[Detections], cfg: PostprocessConfig, slice_cfg: SliceConfig,
                num_classes: int) -> Detections:
    """Merge the detections of one image's windows (image pixels) into one :class:`Detections`.

    Keeps at most ``cfg.top_k``, sorted by score.
    """
    boxes = torch.cat([d.boxes for d in dets]) if dets else Detections.empty().boxes
    scores = torch.cat([d.scores for d in dets]) if dets else Detections.empty().scores
    labels = torch.cat([d.labels for d in dets]) if dets else Detections.empty().labels
    if scores.numel() == 0:
        return Detections.empty(boxes.device)
    if slice_cfg.merge == "greedy":
        merged = greedy_nmm(boxes, scores, labels, slice_cfg.merge_threshold)
        k = min(cfg.top_k, len(merged))
        return Detections(merged.boxes[:k], merged.scores[:k], merged.labels[:k])
    # softnms merges with the method's own Soft-NMS flavour (linear when the method is hard NMS).
    method = "nms" if slice_cfg.merge == "nms" else "soft_linear" if cfg.method == "nms" else cfg.method
    # One-hot score table: each detection is an "anchor" scoring only its own class.
    table = scores.new_zeros((1, scores.numel(), num_classes))
    table[0, torch.arange(scores.numel(), device=scores.device), labels] = scores
    # score_threshold 0: Soft-NMS tile outputs may already be decayed below the method's threshold.
    merge_cfg = dataclasses.replace(cfg, method=method, score_threshold=0.0,
                                    candidates_per_class=max(cfg.candidates_per_class, scores.numel()))
    return postprocess(boxes[None].float(), table, merge_cfg)[0]


def _ios(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over the smaller area of ``box`` (4,) with each of ``others`` (K, 4)."""
    wh = (np.minimum(box[2:], others[:, 2:]) - np.maximum(box[:2], others[:, :2])).clip(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    smaller = np.minimum(area, areas)
    return np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1), 0.0)


def greedy_nmm(boxes: Tensor, scores: Tensor, labels: Tensor, threshold: float = 0.5) -> Detections:
    """SAHI's greedy non-maximum merging (per class, IOS match) of K boxes -> merged, sorted by score.

    As SAHI: candidates of a kept box are the later (lower-scored) unclaimed boxes of its
    class whose IOS with the kept box's *original* box is >= ``threshold``; they are then
    merged one by one (in score order) if they still match the *grown* box.
    """
    device = boxes.device
    b = boxes.detach().double().cpu().numpy()
    s = scores.detach().double().cpu().numpy()
    lab = labels.detach().cpu().numpy()
    out_b, out_s, out_l = [], [], []
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        idx = idx[np.argsort(-s[idx], kind="stable")]
        claimed = np.zeros(idx.size, bool)
        for i in range(idx.size):
            if claimed[i]:
                continue
            claimed[i] = True
            rest = np.flatnonzero(~claimed[i + 1:]) + i + 1
            cand = rest[_ios(b[idx[i]], b[idx[rest]]) >= threshold] if rest.size else rest
            claimed[cand] = True
            keep = b[idx[i]].copy()
            for j in cand:
                if _ios(keep, b[idx[j]][None])[0] >= threshold:
                    keep[:2] = np.minimum(keep[:2], b[idx[j], :2])
                    keep[2:] = np.maximum(keep[2:], b[idx[j], 2:])
            out_b.append(keep)
            out_s.append(s[idx[i]])
            out_l.append(c)
    order = np.argsort(-np.asarray(out_s), kind="stable")
    return Detections(
        torch.as_tensor(np.asarray(out_b).reshape(-1, 4)[order], dtype=torch.float32, device=device),
        torch.as_tensor(np.asarray(out_s)[order], dtype=torch.float32, device=device),
        torch.as_tensor(np.asarray(out_l)[order], dtype=torch.int64, device=device),
    )

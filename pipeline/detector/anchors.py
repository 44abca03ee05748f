"""SSD default boxes (Liu et al. 2016, §2.2), laid out as the Caffe reference does.

Scales follow the Caffe ``ssd_pascal.py`` rule, which is the paper's
s_k = s_min + (s_max − s_min)(k − 1)/(m − 1) evaluated in integer percent over all
but the finest source, plus a special finest source:

* finest source: min size ``first_scale`` · S, max size ``min_scale`` · S;
* sources 2..m: ratios r_k = min% + step·(k − 2) with step = ⌊(max% − min%)/(m − 2)⌋,
  min size r_k · S/100, max size (r_k + step) · S/100.

For SSD300 (m = 6, first 0.1, min 0.2, max 0.9) this gives the published min sizes
30, 60, 111, 162, 213, 264 and max sizes 60, 111, 162, 213, 264, 315 px.  Each cell
holds a box of size min, one of sqrt(min·max) (aspect 1) and, per extra aspect
ratio r, boxes (min·√r, min/√r) and (min/√r, min·√r).  Cell centres are
(j + 0.5)·step / S with the Caffe step = the source's network stride (8, 16, 32, 64)
or S / f where the map is not a strided grid (conv10_2: 100, conv11_2: 300), i.e.
step = max(stride, S / f).  Boxes are not clipped (Caffe VOC config: ``clip=False``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LevelSpec:
    """Default boxes of one prediction source.

    Attributes:
        name: source name (``conv4_3``, ``module1`` …).
        size: feature-map side f (square maps).
        step: pixels between neighbouring cell centres at the input resolution.
        min_size, max_size: box sizes in input pixels (the aspect-1 boxes are min and sqrt(min·max)).
        ratios: extra aspect ratios r; each adds boxes of aspect r and 1/r.
    """

    name: str
    size: int
    step: float
    min_size: float
    max_size: float
    ratios: tuple[int, ...]

    @property
    def boxes_per_cell(self) -> int:
        return 2 + 2 * len(self.ratios)

    @property
    def num_anchors(self) -> int:
        return self.size * self.size * self.boxes_per_cell


def caffe_sizes(
    num_levels: int, input_size: int, first_scale: float, min_scale: float, max_scale: float
) -> list[tuple[float, float]]:
    """(min_size, max_size) in pixels per level by the Caffe rule (module docstring).

    >>> caffe_sizes(6, 300, 0.1, 0.2, 0.9)[:2]
    [(30.0, 60.0), (60.0, 111.0)]
    """
    if num_levels < 3:
        raise ValueError(f"the Caffe scale rule needs at least 3 levels, got {num_levels}")
    lo, hi = round(min_scale * 100), round(max_scale * 100)
    step = (hi - lo) // (num_levels - 2)
    ratios = [lo + step * k for k in range(num_levels - 1)]
    sizes = [(first_scale * input_size, lo * input_size / 100)]
    sizes += [(r * input_size / 100, (r + step) * input_size / 100) for r in ratios]
    return sizes


def level_step(stride: int, size: int, input_size: int) -> float:
    """Caffe ``step``: the network stride, or S / f where the map is coarser than its stride."""
    return float(max(stride, input_size / size))


def default_boxes(levels: Sequence[LevelSpec], input_size: int) -> tuple[Tensor, Tensor]:
    """All default boxes, in the order the heads emit predictions.

    Order: level, then cell row (y), cell column (x), then box within the cell
    (min, sqrt(min·max), then (r, 1/r) per ratio) — matching a head output
    permuted from (N, B·K, H, W) to (N, H·W·B, K).

    Returns:
        anchors: (A, 4) cxcywh normalised to [0, 1] (float32).
        level_index: (A,) int64 index of each box's level.
    """
    out, idx = [], []
    for li, lv in enumerate(levels):
        s, s2 = lv.min_size / input_size, math.sqrt(lv.min_size * lv.max_size) / input_size
        wh = [(s, s), (s2, s2)]
        for r in lv.ratios:
            q = math.sqrt(r)
            wh += [(s * q, s / q), (s / q, s * q)]
        wh_t = torch.tensor(wh, dtype=torch.float64)  # (B, 2)
        c = (torch.arange(lv.size, dtype=torch.float64) + 0.5) * lv.step / input_size
        cy, cx = torch.meshgrid(c, c, indexing="ij")
        centres = torch.stack((cx, cy), -1).reshape(-1, 1, 2).expand(-1, len(wh), 2)  # (f², B, 2)
        boxes = torch.cat((centres, wh_t.expand(lv.size * lv.size, -1, -1)), -1).reshape(-1, 4)
        out.append(boxes)
        idx.append(torch.full((boxes.shape[0],), li, dtype=torch.int64))
    return torch.cat(out).float(), torch.cat(idx)

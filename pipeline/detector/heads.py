"""SSD prediction heads: one 3×3 conv per source for class scores and one for box offsets."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _flatten(x: Tensor, k: int) -> Tensor:
    """Permute (N, B·K, H, W) to (N, H, W, B·K), then reshape to (N, H·W·B, K).

    The anchor order (row, column, box) matches :func:`pipeline.detector.anchors.default_boxes`.
    """
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, k)


class SSDHead(nn.Module):
    """Class and box predictors for every source (Liu et al. 2016, §2.1).

    Args:
        in_channels: channels of each source map.
        boxes_per_cell: default boxes per cell of each source.
        num_outputs: classes including background (C + 1).
    """

    def __init__(self, in_channels: Sequence[int], boxes_per_cell: Sequence[int], num_outputs: int) -> None:
        super().__init__()
        if len(in_channels) != len(boxes_per_cell):
            raise ValueError(f"{len(in_channels)} sources but {len(boxes_per_cell)} box counts")
        self.num_outputs = num_outputs
        self.cls = nn.ModuleList(
            nn.Conv2d(c, b * num_outputs, 3, padding=1) for c, b in zip(in_channels, boxes_per_cell)
        )
        self.reg = nn.ModuleList(nn.Conv2d(c, b * 4, 3, padding=1) for c, b in zip(in_channels, boxes_per_cell))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, sources: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """sources: list of (N, C_l, H_l, W_l) -> cls (N, A, C+1), box (N, A, 4)."""
        cls = [_flatten(head(x), self.num_outputs) for head, x in zip(self.cls, sources)]
        box = [_flatten(head(x), 4) for head, x in zip(self.reg, sources)]
        return torch.cat(cls, dim=1), torch.cat(box, dim=1)

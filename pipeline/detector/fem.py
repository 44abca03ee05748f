"""Feature-Enhancement Module ("Improved SSD for small objects"): 3×3 conv → BatchNorm → Mish."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class FEM(nn.Sequential):
    """Channel-preserving 3×3 conv (no bias, BN follows) → BatchNorm → Mish (x·tanh(softplus x))."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.Mish(inplace=True),
        )
        nn.init.kaiming_normal_(self[0].weight, mode="fan_out", nonlinearity="relu")


class SourceEnhancer(nn.Module):
    """FEM on every prediction source larger than 1×1, identity on the rest.

    For SSD that is conv4_3, fc7, conv8_2, conv9_2, conv10_2 (not conv11_2), as in the
    paper.  The FEM sits on the branch to the head (the trunk keeps its path, so
    ImageNet weights see the features they were trained on); on conv4_3 it follows
    the L2Norm.  Composed with ``shallow`` it also enhances conv3_3 — the shallowest,
    semantically weakest source, which is what FEM is for; with ``mdssd`` it enhances
    Module1-3 and conv8_2-conv10_2.

    Args:
        channels: per source; sizes: per source map side (square maps).
    """

    def __init__(self, channels: Sequence[int], sizes: Sequence[int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(FEM(c) if s > 1 else nn.Identity() for c, s in zip(channels, sizes))

    def forward(self, sources: Sequence[Tensor]) -> list[Tensor]:
        return [block(x) for block, x in zip(self.blocks, sources)]

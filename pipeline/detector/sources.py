"""Plain SSD prediction sources: pick backbone maps, L2-normalise the shallow ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from pipeline.detector.backbone import L2Norm

#: Maps whose activations are much larger than the deeper ones' and are L2-normalised
#: with a learnable scale initialised to 20 before prediction (SSD §3.1 for conv4_3;
#: conv3_3 in ``shallow`` gets the same treatment for the same reason).
NORMALISED = ("conv3_3", "conv4_3")


class SSDSources(nn.Module):
    """Select ``names`` from the backbone's map dict, in order.

    Args:
        names: source maps, e.g. conv4_3, fc7, conv8_2, conv9_2, conv10_2, conv11_2.
        channels: channels of every backbone map (by name).
    """

    def __init__(self, names: Sequence[str], channels: Mapping[str, int]) -> None:
        super().__init__()
        self.names = tuple(names)
        self.norms = nn.ModuleDict({n: L2Norm(channels[n]) for n in self.names if n in NORMALISED})
        self.out_channels = tuple(channels[n] for n in self.names)

    def forward(self, maps: Mapping[str, Tensor]) -> list[Tensor]:
        return [self.norms[n](maps[n]) if n in self.norms else maps[n] for n in self.names]

"""MDSSD deconvolution fusion modules (Xu et al., "MDSSD: Multi-scale Deconvolutional
Single Shot Detector for Small Objects").

Module1 = conv3_3 ⊕ up(conv8_2), Module2 = conv4_3 ⊕ up(conv9_2), Module3 = fc7 ⊕ up(conv10_2).

* shallow branch: 3×3 conv to 256 / 512 / 1024 (× width) channels + L2Norm;
* deep branch: [2×2 stride-2 deconv, 3×3 conv, ReLU] repeated, the last repetition
  ending in L2Norm instead of ReLU (deconv → 3×3 conv → L2Norm).  The repetitions
  keep the deep map's channels (512, 256, 256) and only the last 3×3 conv widens to
  the shallow branch's channels, which the sum needs (the paper does not give the
  intermediate widths; widening at every step would triple Module3's parameters);
* fusion: element-wise sum → ReLU → 3×3 conv → ReLU.

Size mismatch: the deep maps (10, 5, 3 at 300 input) are up-sampled ×2 per
repetition, as many times as needed to cover the shallow map (⌈log2(75/10)⌉ =
⌈log2(38/5)⌉ = ⌈log2(19/3)⌉ = 3 → 80, 40, 24), then cropped to the shallow size
(75, 38, 19) keeping the top-left part.  The crop (rather than interpolation)
keeps the deconvolution's stride-aligned grid: deep cell i covers shallow cells
8i … 8i+7 in all three modules, and the cropped cells lie beyond the image's
bottom/right edge.  L2Norm scales start at 20 (SSD's value; the paper gives none).

``batch_norm`` (ScratchDet, Zhu et al. ICCV 2019): a BatchNorm before every ReLU of the
modules (the deep branch's intermediate 3×3 convs and the fusion conv), those convs
then bias-free; the L2Norm'ed branch ends stay as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import Tensor, nn

from pipeline.detector.backbone import L2Norm, conv_bn_relu, scaled

#: (module name, shallow map, deep map, channels at width 1).
MODULES = (
    ("module1", "conv3_3", "conv8_2", 256),
    ("module2", "conv4_3", "conv9_2", 512),
    ("module3", "fc7", "conv10_2", 1024),
)
#: Prediction sources of MDSSD, finest first.
SOURCES = ("module1", "module2", "module3", "conv8_2", "conv9_2", "conv10_2", "conv11_2")


class FusionModule(nn.Module):
    """One deconvolution fusion module.

    Args:
        shallow_channels, deep_channels: input channels; out_channels: fused channels.
        num_up: number of ×2 deconvolution steps; batch_norm: BN before every ReLU.
    """

    def __init__(
        self, shallow_channels: int, deep_channels: int, out_channels: int, num_up: int, batch_norm: bool = False
    ) -> None:
        super().__init__()
        self.shallow = nn.Sequential(
            nn.Conv2d(shallow_channels, out_channels, 3, padding=1), L2Norm(out_channels)
        )
        layers: list[nn.Module] = []
        c = deep_channels
        for i in range(num_up):
            layers.append(nn.ConvTranspose2d(c, c, kernel_size=2, stride=2))
            if i == num_up - 1:
                layers += [nn.Conv2d(c, out_channels, 3, padding=1), L2Norm(out_channels)]
            else:
                layers += conv_bn_relu(c, c, batch_norm, kernel_size=3, padding=1)
        self.deep = nn.Sequential(*layers)
        self.fuse = nn.Sequential(
            nn.ReLU(inplace=True), *conv_bn_relu(out_channels, out_channels, batch_norm, kernel_size=3, padding=1)
        )

    def forward(self, shallow: Tensor, deep: Tensor) -> Tensor:
        s = self.shallow(shallow)
        d = self.deep(deep)[..., : s.shape[-2], : s.shape[-1]]  # top-left crop (module docstring)
        return self.fuse(s + d)


class MDSSDSources(nn.Module):
    """The seven MDSSD prediction sources from the backbone's map dict.

    Args:
        channels: channels of every backbone map; sizes: side of every backbone map;
        width: channel multiplier for the fused maps; batch_norm: see :class:`FusionModule`.
    """

    def __init__(
        self, channels: Mapping[str, int], sizes: Mapping[str, int], width: float = 1.0, batch_norm: bool = False
    ) -> None:
        super().__init__()
        self.names = SOURCES
        self.fusions = nn.ModuleDict()
        fused = {}
        for name, shallow, deep, c in MODULES:
            num_up = max(1, math.ceil(math.log2(sizes[shallow] / sizes[deep])))
            self.fusions[name] = FusionModule(
                channels[shallow], channels[deep], scaled(c, width), num_up, batch_norm
            )
            fused[name] = scaled(c, width)
        self.out_channels = tuple(fused.get(n, channels.get(n, 0)) for n in SOURCES)

    def forward(self, maps: Mapping[str, Tensor]) -> list[Tensor]:
        out = {name: self.fusions[name](maps[s], maps[d]) for name, s, d, _ in MODULES}
        return [out[n] if n in out else maps[n] for n in SOURCES]

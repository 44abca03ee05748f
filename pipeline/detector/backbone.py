"""VGG16 trunk and SSD extra layers (Liu et al. 2016, Fig. 2), with a width multiplier.

The trunk is torchvision's VGG16 ``features`` (``torchvision.models.vgg.make_layers``
with config "D"), so its parameter names are ``features.<i>.*`` exactly as in
``torchvision.models.vgg16`` and an ImageNet state dict maps 1:1.  As in SSD:
pool3 uses ``ceil_mode`` (75 → 38 at 300 input), pool5 is 3×3 stride 1 pad 1, and
fc6/fc7 become a 3×3 conv with dilation 6 (1024 ch) and a 1×1 conv (1024 ch).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers

# Indices into VGG16 ``features`` (config "D"): the ReLU after conv3_3 / conv4_3, pools.
CONV3_3_RELU = 15
POOL3 = 16
CONV4_3_RELU = 22
POOL5 = 30


def scaled(channels: int, width: float) -> int:
    """Channel count times the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def _stride(modules: nn.Module) -> int:
    """Product of the strides of all convs/pools in ``modules`` (deconvs not expected)."""
    s = 1
    for m in modules.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            st = m.stride if isinstance(m.stride, int) else m.stride[0]
            s *= st
    return s


class VGG16Trunk(nn.Module):
    """conv1_1 … fc7.  ``forward`` returns (conv3_3, conv4_3, fc7) maps (after ReLU).

    Attributes:
        features: torchvision-layout VGG16 ``features`` (pool3 ceil_mode, SSD pool5).
        fc6, fc7: dilated 3×3 conv (1024·w) and 1×1 conv (1024·w).
        out_channels, strides: per returned map.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        cfg = [v if v == "M" else scaled(int(v), width) for v in cfgs["D"]]
        self.features = make_layers(cfg, batch_norm=False)
        self.features[POOL3] = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
        self.features[POOL5] = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        c5, c7 = cfg[-2], scaled(1024, width)
        self.fc6 = nn.Conv2d(c5, c7, kernel_size=3, padding=6, dilation=6)
        self.fc7 = nn.Conv2d(c7, c7, kernel_size=1)
        self.out_channels = (cfg[8], cfg[12], c7)
        s3 = _stride(self.features[: CONV3_3_RELU + 1])
        s4 = s3 * _stride(self.features[CONV3_3_RELU + 1 : CONV4_3_RELU + 1])
        self.strides = (s3, s4, s4 * _stride(self.features[CONV4_3_RELU + 1 :]))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c3 = self.features[: CONV3_3_RELU + 1](x)
        c4 = self.features[CONV3_3_RELU + 1 : CONV4_3_RELU + 1](c3)
        x = self.features[CONV4_3_RELU + 1 :](c4)
        x = torch.relu(self.fc6(x))
        return c3, c4, torch.relu(self.fc7(x))


# SSD300 extra layers after fc7: (1×1 channels, 3×3 channels, 3×3 stride, 3×3 padding).
EXTRAS_300 = (
    ("conv8", 256, 512, 2, 1),
    ("conv9", 128, 256, 2, 1),
    ("conv10", 128, 256, 1, 0),
    ("conv11", 128, 256, 1, 0),
)


class SSDExtras(nn.Module):
    """conv8_1/8_2 … conv11_1/11_2.  ``forward(fc7)`` returns the four ``_2`` maps.

    Attributes:
        out_channels, strides: per returned map (strides relative to the input image).
    """

    def __init__(self, in_channels: int, in_stride: int, width: float = 1.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        channels, strides, c, s = [], [], in_channels, in_stride
        for _, mid, out, stride, pad in EXTRAS_300:
            mid, out = scaled(mid, width), scaled(out, width)
            block = nn.Sequential(
                nn.Conv2d(c, mid, kernel_size=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(mid, out, kernel_size=3, stride=stride, padding=pad),
                nn.ReLU(inplace=True),
            )
            self.blocks.append(block)
            c, s = out, s * _stride(block)
            channels.append(c)
            strides.append(s)
        self.out_channels = tuple(channels)
        self.strides = tuple(strides)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learnable per-channel scale (ParseNet; SSD uses 20)."""

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # Norm in float32: squares of bf16 activations lose precision / overflow.
        norm = x.float().pow(2).sum(1, keepdim=True).add(self.eps).sqrt()
        return (x.float() / norm * self.weight.view(1, -1, 1, 1)).to(x.dtype)


class SSDBackbone(nn.Module):
    """VGG16 trunk + SSD extras: ``forward(x)`` returns every map a variant may predict on.

    Keys, in depth order: ``conv3_3`` (75² at 300 input), ``conv4_3`` (38²), ``fc7`` (19²),
    ``conv8_2`` (10²), ``conv9_2`` (5²), ``conv10_2`` (3²), ``conv11_2`` (1²).

    Attributes:
        channels, strides: dicts keyed like the output.
    """

    NAMES = ("conv3_3", "conv4_3", "fc7", "conv8_2", "conv9_2", "conv10_2", "conv11_2")

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.trunk = VGG16Trunk(width)
        self.extras = SSDExtras(self.trunk.out_channels[-1], self.trunk.strides[-1], width)
        self.channels = dict(zip(self.NAMES, self.trunk.out_channels + self.extras.out_channels))
        self.strides = dict(zip(self.NAMES, self.trunk.strides + self.extras.strides))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        c3, c4, fc7 = self.trunk(x)
        return dict(zip(self.NAMES, [c3, c4, fc7, *self.extras(fc7)]))

"""VGG16 trunk and SSD extra layers (Liu et al. 2016, Fig. 2), with a width multiplier.

The trunk is torchvision's VGG16 ``features`` (``torchvision.models.vgg.make_layers``
with config "D"), so its parameter names are ``features.<i>.*`` exactly as in
``torchvision.models.vgg16`` and an ImageNet state dict maps 1:1.  As in SSD:
pool3 uses ``ceil_mode`` (75 → 38 at 300 input), pool5 is 3×3 stride 1 pad 1, and
fc6/fc7 become a 3×3 conv with dilation 6 (1024 ch) and a 1×1 conv (1024 ch).

``batch_norm=True`` follows ScratchDet (Zhu et al., "ScratchDet: Training Single-Shot
Object Detectors from Scratch", ICCV 2019): BatchNorm before every ReLU of the
backbone *and* of the detection subnetwork makes SSD trainable from random init with
a larger learning rate.  The trunk then has torchvision's ``vgg16_bn`` layout
(conv → BN → ReLU, ``features.<i>`` indices as in ``torchvision.models.vgg16_bn``, so
its ImageNet weights map 1:1); fc6, fc7 and every extra-layer conv are bias-free and
followed by a BatchNorm (``bn6``, ``bn7``; ``Identity`` without BN, so the plain
model's state-dict keys are unchanged).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers

# Positions in VGG16 config "D": conv3_3 / conv4_3 are the 7th / 10th conv, pool3 / pool5
# the 3rd / 5th max-pool.
CONV3_3, CONV4_3, POOL3, POOL5 = 7, 10, 3, 5


def vgg16_layout(batch_norm: bool) -> dict[str, int]:
    """Indices into ``features`` of the ReLU after conv3_3 / conv4_3 and of pool3 / pool5.

    Plain VGG16: ``conv3_3_relu`` 15, ``conv4_3_relu`` 22, ``pool3`` 16, ``pool5`` 30;
    ``vgg16_bn`` (conv, BN, ReLU per layer): 22, 32, 23, 43.
    """
    idx, convs, pools, out = 0, 0, 0, {}
    for v in cfgs["D"]:
        if v == "M":
            pools += 1
            if pools in (POOL3, POOL5):
                out[f"pool{pools}"] = idx
            idx += 1
        else:
            convs += 1
            idx += 3 if batch_norm else 2
            if convs in (CONV3_3, CONV4_3):
                out[f"conv{3 if convs == CONV3_3 else 4}_3_relu"] = idx - 1
    return out


def bn_or_identity(channels: int, batch_norm: bool) -> nn.Module:
    """``BatchNorm2d(channels)`` or a parameter-free ``Identity``."""
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


def conv_bn_relu(cin: int, cout: int, batch_norm: bool, **conv_kw) -> list[nn.Module]:
    """[conv, ReLU], or [bias-free conv, BatchNorm, ReLU] (ScratchDet)."""
    conv = nn.Conv2d(cin, cout, bias=not batch_norm, **conv_kw)
    return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]


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

    Args:
        width: channel multiplier; batch_norm: ``vgg16_bn`` layout + BN after fc6/fc7.
    Attributes:
        features: torchvision-layout VGG16 / VGG16-BN ``features`` (pool3 ceil_mode, SSD pool5).
        fc6, fc7: dilated 3×3 conv (1024·w) and 1×1 conv (1024·w); bn6, bn7 follow them.
        out_channels, strides: per returned map.
    """

    def __init__(self, width: float = 1.0, batch_norm: bool = False) -> None:
        super().__init__()
        self.batch_norm = batch_norm
        self.layout = vgg16_layout(batch_norm)
        cfg = [v if v == "M" else scaled(int(v), width) for v in cfgs["D"]]
        self.features = make_layers(cfg, batch_norm=batch_norm)
        self.features[self.layout["pool3"]] = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
        self.features[self.layout["pool5"]] = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        c5, c7 = cfg[-2], scaled(1024, width)
        self.fc6 = nn.Conv2d(c5, c7, kernel_size=3, padding=6, dilation=6, bias=not batch_norm)
        self.bn6 = bn_or_identity(c7, batch_norm)
        self.fc7 = nn.Conv2d(c7, c7, kernel_size=1, bias=not batch_norm)
        self.bn7 = bn_or_identity(c7, batch_norm)
        self.out_channels = (cfg[8], cfg[12], c7)
        r3, r4 = self.layout["conv3_3_relu"], self.layout["conv4_3_relu"]
        s3 = _stride(self.features[: r3 + 1])
        s4 = s3 * _stride(self.features[r3 + 1 : r4 + 1])
        self.strides = (s3, s4, s4 * _stride(self.features[r4 + 1 :]))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r3, r4 = self.layout["conv3_3_relu"], self.layout["conv4_3_relu"]
        c3 = self.features[: r3 + 1](x)
        c4 = self.features[r3 + 1 : r4 + 1](c3)
        x = self.features[r4 + 1 :](c4)
        x = torch.relu(self.bn6(self.fc6(x)))
        return c3, c4, torch.relu(self.bn7(self.fc7(x)))


# SSD300 extra layers after fc7: (1×1 channels, 3×3 channels, 3×3 stride, 3×3 padding).
EXTRAS_300 = (
    ("conv8", 256, 512, 2, 1),
    ("conv9", 128, 256, 2, 1),
    ("conv10", 128, 256, 1, 0),
    ("conv11", 128, 256, 1, 0),
)


class SSDExtras(nn.Module):
    """conv8_1/8_2 … conv11_1/11_2.  ``forward(fc7)`` returns the four ``_2`` maps.

    Args:
        in_channels, in_stride: of fc7; width: channel multiplier;
        batch_norm: bias-free conv → BN → ReLU instead of conv → ReLU (ScratchDet).
    Attributes:
        out_channels, strides: per returned map (strides relative to the input image).
    """

    def __init__(self, in_channels: int, in_stride: int, width: float = 1.0, batch_norm: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        channels, strides, c, s = [], [], in_channels, in_stride
        for _, mid, out, stride, pad in EXTRAS_300:
            mid, out = scaled(mid, width), scaled(out, width)
            block = nn.Sequential(
                *conv_bn_relu(c, mid, batch_norm, kernel_size=1),
                *conv_bn_relu(mid, out, batch_norm, kernel_size=3, stride=stride, padding=pad),
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

    Args:
        width: channel multiplier; batch_norm: ScratchDet BN in trunk and extras.
    Attributes:
        channels, strides: dicts keyed like the output.
    """

    NAMES = ("conv3_3", "conv4_3", "fc7", "conv8_2", "conv9_2", "conv10_2", "conv11_2")

    def __init__(self, width: float = 1.0, batch_norm: bool = False) -> None:
        super().__init__()
        self.trunk = VGG16Trunk(width, batch_norm)
        self.extras = SSDExtras(self.trunk.out_channels[-1], self.trunk.strides[-1], width, batch_norm)
        self.channels = dict(zip(self.NAMES, self.trunk.out_channels + self.extras.out_channels, strict=True))
        self.strides = dict(zip(self.NAMES, self.trunk.strides + self.extras.strides, strict=True))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        c3, c4, fc7 = self.trunk(x)
        return dict(zip(self.NAMES, [c3, c4, fc7, *self.extras(fc7)], strict=True))

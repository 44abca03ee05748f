"""SRGAN networks from basicsr (Ledig et al. 2017, "Photo-Realistic Single Image
Super-Resolution Using a Generative Adversarial Network").

Generator: basicsr ``MSRResNet`` (SRResNet without BatchNorm: conv, ``num_block``
residual blocks of ``num_feat`` channels, two pixel-shuffle x2 upsamplers for x4, plus a
bilinear skip).  Discriminator: basicsr ``VGGStyleDiscriminator`` (input 128 or 256 px).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from pipeline.sr.basicsr_compat import import_basicsr


def build_generator(num_feat: int = 64, num_block: int = 16, scale: int = 4) -> nn.Module:
    """MSRResNet mapping (N, 3, h, w) in [0, 1] to (N, 3, scale*h, scale*w)."""
    import_basicsr()
    from basicsr.archs.srresnet_arch import MSRResNet

    return MSRResNet(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_block=num_block, upscale=scale)


def build_discriminator(num_feat: int = 64, input_size: int = 128) -> nn.Module:
    """VGGStyleDiscriminator: (N, 3, input_size, input_size) -> (N, 1) logits."""
    if input_size not in (128, 256):
        raise ValueError(
            f"VGGStyleDiscriminator takes 128 or 256 px HR patches, got {input_size} "
            "(set sr.train.patch_size to 32 or 64 for the GAN phase at x4)"
        )
    import_basicsr()
    from basicsr.archs.discriminator_arch import VGGStyleDiscriminator

    return VGGStyleDiscriminator(num_in_ch=3, num_feat=num_feat, input_size=input_size)


def generator_shape(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Derive ``num_feat``, ``num_block`` and ``scale`` of an MSRResNet state dict.

    Raises:
        KeyError: the dict is not an MSRResNet state dict.
    """
    for key in ("conv_first.weight", "upconv1.weight", "conv_last.weight"):
        if key not in state:
            raise KeyError(f"not an MSRResNet state dict: missing {key!r}")
    num_feat = int(state["conv_first.weight"].shape[0])
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.conv1\.weight$", k))}
    if "upconv2.weight" in state:
        scale = 4
    else:
        scale = int(round((state["upconv1.weight"].shape[0] / num_feat) ** 0.5))
    return {"num_feat": num_feat, "num_block": len(blocks), "scale": scale}

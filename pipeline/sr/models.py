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


def build_generator(num_feat: int = 64, num_block: int = 16, scale: int = 4, trunk_init_scale: float = 0.1) -> nn.Module:
    """MSRResNet mapping (N, 3, h, w) in [0, 1] to (N, 3, scale*h, scale*w).

    Args:
        trunk_init_scale: scale of the Kaiming init of ``conv_first``, the upsampling
            convs and ``conv_hr``.  basicsr uses 0.1 everywhere, which starts the residual
            branch at ~1e-5 of the bilinear skip: right for its 1M-iteration schedule but
            it barely moves in a few hundred steps (measured: no PSNR change after 400
            steps on the embedded set).  1.0 there (residual blocks and ``conv_last`` keep
            0.1, so the output still starts near bilinear) lets a short CPU run beat bicubic.
    """
    import_basicsr()
    from basicsr.archs.arch_util import default_init_weights
    from basicsr.archs.srresnet_arch import MSRResNet

    g = MSRResNet(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_block=num_block, upscale=scale)
    if trunk_init_scale != 0.1:
        trunk = [g.conv_first, g.upconv1, g.conv_hr] + ([g.upconv2] if scale == 4 else [])
        default_init_weights(trunk, trunk_init_scale)
    return g


def build_discriminator(num_feat: int = 64, input_size: int = 128) -> nn.Module:
    """VGGStyleDiscriminator: (N, 3, input_size, input_size) -> (N, 1) logits."""
    if input_size not in (128, 256):
        raise ValueError(
            f"VGGStyleDiscriminator takes 128 or 256 px HR patches, got {input_size} "
            "(set sr.train.gan_patch_size to 32 or 64 for the GAN phase at x4)"
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

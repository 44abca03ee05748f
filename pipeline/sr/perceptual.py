"""Content losses of the SRGAN phase: L1 between frozen-network features of the SR output
and of the HR patch (Ledig et al. 2017, sec. 2.2.1), the gradient reaching the generator only.

- :class:`DetectorContentLoss`: a *task-driven* perceptual loss — the VGG16 trunk of an
  SSD trained on the HR set (stage ``sr_features``), up to ``conv3_3`` or ``conv4_3``
  (SSD's first prediction source).  SR and HR patches go through the detector's own input
  contract (:meth:`pipeline.detector.model.SSD.normalize`: RGB in [0, 1] standardised by
  the ImageNet mean/std), at their HR pixel scale: the trunk is convolutional, and the
  detector sees a whole W x H image warped to S x S (0.75-1.0x on the embedded default),
  so a patch is not resampled (which would blur the very detail the loss compares).
  Needs no download: it exists offline.
- :class:`VGGContentLoss`: ImageNet VGG19 ``conv5_4`` (SRGAN's), basicsr's ``PerceptualLoss``
  (:func:`pipeline.sr.weights.build_perceptual_loss`), when its weights are given.

Both are frozen (``requires_grad`` off, always in eval mode: BatchNorm uses its running
statistics) and expose ``name`` and ``source`` (the weights file: part of a run's fingerprint).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from pipeline.sr.config import CONTENT_LAYERS, SRPerceptualConfig, SRTrainConfig
from pipeline.sr.weights import TORCHVISION, build_perceptual_loss


class ContentLoss(nn.Module):
    """``loss(sr, hr)`` -> scalar L1 distance of frozen features; (N, 3, H, W) in [0, 1]."""

    name: str = "content"
    source: str | None = None

    def freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ContentLoss:
        """Stays in eval mode: the feature network is fixed."""
        return super().train(False)


class DetectorContentLoss(ContentLoss):
    """L1 between detector trunk features (up to ``layer``) of SR and HR.

    Args:
        checkpoint: a detector ``model.pt`` (:mod:`pipeline.detector.checkpoint`).
        layer: ``conv3_3`` or ``conv4_3``.

    Raises:
        CheckpointError: the file is missing or not a detector checkpoint (names it).
    """

    def __init__(self, checkpoint: str | os.PathLike[str], layer: str = "conv4_3") -> None:
        super().__init__()
        from pipeline.detector.checkpoint import load_detector

        if layer not in CONTENT_LAYERS:
            raise ValueError(f"content layer {layer!r} is not one of {list(CONTENT_LAYERS)}")
        self.detector, _ = load_detector(checkpoint)
        self.depth = self.detector.backbone.trunk.layout[f"{layer}_relu"] + 1
        self.name, self.source = f"detector:{layer}", str(checkpoint)
        self.freeze()

    def features(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) in [0, 1] -> the trunk's ``layer`` map (N, C, H/s, W/s), s = 4 or 8."""
        return self.detector.backbone.trunk.features[: self.depth](self.detector.normalize(images))

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.features(hr)
        return nn.functional.l1_loss(self.features(sr), target)


class VGGContentLoss(ContentLoss):
    """L1 between ImageNet VGG19 ``conv5_4`` features (SRGAN); random VGG19 when ``weights`` is None."""

    def __init__(self, weights: str | None) -> None:
        super().__init__()
        self.loss = build_perceptual_loss(weights, perceptual_weight=1.0)
        self.name = "vgg19:conv5_4" if weights is not None else "vgg19-random:conv5_4"
        self.source = weights if weights not in (None, TORCHVISION) else None
        self.freeze()

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return self.loss(sr, hr)[0]  # (perceptual, style); style weight 0


def build_content_loss(train: SRTrainConfig, perceptual: SRPerceptualConfig,
                       detector: str | os.PathLike[str] | None) -> ContentLoss:
    """VGG19 when ``sr.train.vgg19_weights`` is set (or ``force_perceptual``: random VGG19),
    else the features of the ``detector`` checkpoint at ``sr.perceptual.layer``."""
    if train.vgg19_weights is not None or train.force_perceptual:
        return VGGContentLoss(train.vgg19_weights)
    if detector is None:
        raise ValueError("the task-driven content loss needs a detector checkpoint (stage sr_features), "
                         "or set sr.train.vgg19_weights")
    return DetectorContentLoss(Path(detector), perceptual.layer)

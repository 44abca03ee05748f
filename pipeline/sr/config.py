"""Typed ``sr`` params section (see ``params.yaml``): model shape, training, inference.

Defaults are the embedded-default values: a small SRResNet trained for a few
hundred pixel-loss iterations, sized to run on 2 CPU cores in about two minutes.
``configs/sr_gpu.yaml`` holds the paper-sized recipe (16 blocks, 64 channels, GAN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.config import require


@dataclass(frozen=True)
class SRModelConfig:
    """Generator shape (basicsr ``MSRResNet``); the discriminator is ``VGGStyleDiscriminator``."""

    num_feat: int = 32
    num_block: int = 4
    scale: int = 4
    trunk_init_scale: float = 1.0
    disc_num_feat: int = 64

    def validate(self, prefix: str) -> None:
        require(self.num_feat >= 1, f"{prefix}.num_feat", "must be >= 1")
        require(self.num_block >= 0, f"{prefix}.num_block", "must be >= 0")
        require(self.scale in (2, 3, 4), f"{prefix}.scale", "MSRResNet supports 2, 3, 4")
        require(self.trunk_init_scale > 0, f"{prefix}.trunk_init_scale", "must be > 0 (basicsr: 0.1)")
        require(self.disc_num_feat >= 1, f"{prefix}.disc_num_feat", "must be >= 1")


@dataclass(frozen=True)
class SRTrainConfig:
    """Phase 1 (SRResNet, pixel loss) and phase 2 (SRGAN) schedule and losses.

    ``vgg19_weights``: path to torchvision ``vgg19`` ImageNet weights
    (``vgg19-dcbb9e9d.pth``), ``"torchvision"`` to let torchvision fetch/cache them
    (needs internet once), or null.  Without weights the perceptual/GAN phase is
    skipped with a warning unless ``force_perceptual`` (random VGG features).
    """

    pretrain_iters: int = 400
    gan_iters: int = 0
    patch_size: int = 16
    batch_size: int = 4
    lr_g: float = 2.0e-3
    lr_d: float = 1.0e-4
    lr_milestones: list[float] = field(default_factory=lambda: [0.75])
    lr_gamma: float = 0.5
    pixel_loss: Literal["l1", "mse"] = "mse"
    pixel_weight: float = 1.0e-2
    perceptual_weight: float = 1.0
    adversarial_weight: float = 1.0e-3
    checkpoint_every: int = 100
    log_every: int = 10
    vgg19_weights: str | None = None
    force_perceptual: bool = False
    pretrained_generator: str | None = None
    amp: Literal["none", "bf16", "fp16"] = "none"
    max_cached_images: int = 4096

    def validate(self, prefix: str) -> None:
        require(self.pretrain_iters >= 0, f"{prefix}.pretrain_iters", "must be >= 0")
        require(self.gan_iters >= 0, f"{prefix}.gan_iters", "must be >= 0")
        require(self.patch_size >= 4, f"{prefix}.patch_size", "must be >= 4 (LR pixels)")
        require(self.batch_size >= 1, f"{prefix}.batch_size", "must be >= 1")
        require(self.lr_g > 0 and self.lr_d > 0, f"{prefix}.lr_g", "learning rates must be > 0")
        require(all(0 < m < 1 for m in self.lr_milestones), f"{prefix}.lr_milestones",
                "fractions of a phase, each in (0, 1)")
        require(0 < self.lr_gamma <= 1, f"{prefix}.lr_gamma", "must be in (0, 1]")
        for name in ("pixel_weight", "perceptual_weight", "adversarial_weight"):
            require(getattr(self, name) >= 0, f"{prefix}.{name}", "must be >= 0")
        require(self.checkpoint_every >= 1, f"{prefix}.checkpoint_every", "must be >= 1")
        require(self.log_every >= 1, f"{prefix}.log_every", "must be >= 1")
        require(self.max_cached_images >= 1, f"{prefix}.max_cached_images", "must be >= 1")


@dataclass(frozen=True)
class SRInferConfig:
    """Tiled inference: ``tile``/``tile_overlap`` in LR pixels; ``splits`` to super-resolve."""

    tile: int = 128
    tile_overlap: int = 32
    batch_size: int = 8
    splits: list[str] = field(default_factory=lambda: ["train", "test"])
    metrics_split: str = "test"
    figure_crops: int = 4

    def validate(self, prefix: str) -> None:
        require(self.tile >= 8, f"{prefix}.tile", "must be >= 8")
        require(0 <= self.tile_overlap < self.tile, f"{prefix}.tile_overlap", "must be in [0, tile)")
        require(self.batch_size >= 1, f"{prefix}.batch_size", "must be >= 1")
        require(len(self.splits) > 0 and all(s in ("train", "test") for s in self.splits),
                f"{prefix}.splits", "a non-empty list of 'train'/'test'")
        require(self.metrics_split in ("train", "test"), f"{prefix}.metrics_split", "'train' or 'test'")
        require(self.figure_crops >= 1, f"{prefix}.figure_crops", "must be >= 1")


@dataclass(frozen=True)
class SRConfig:
    """The whole ``sr`` section."""

    model: SRModelConfig = field(default_factory=SRModelConfig)
    train: SRTrainConfig = field(default_factory=SRTrainConfig)
    infer: SRInferConfig = field(default_factory=SRInferConfig)

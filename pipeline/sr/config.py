"""Typed ``sr`` params section (see ``params.yaml``): model shape, training, inference.

Defaults are the embedded-default values: a small SRResNet trained for a few
hundred pixel-loss iterations, sized to run on 2 CPU cores in about two minutes.
``configs/sr_gpu.yaml`` holds the paper-sized recipe (16 blocks, 64 channels, GAN).

Three stages read it: ``sr_train`` runs the pixel phase (:func:`pixel_phase`),
``sr_features`` trains the detector whose features are the task-driven content loss
(``perceptual``), ``srgan_train`` runs the SRGAN phase from the pixel-phase generator
(:func:`gan_phase`).
"""

from __future__ import annotations

import dataclasses
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
    disc_num_feat: int = 16

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
    (needs internet once), or null.  With weights the GAN phase's content loss is VGG19
    ``conv5_4`` (SRGAN); without, the stage ``srgan_train`` uses the features of a
    detector trained on HR (:mod:`pipeline.sr.perceptual`), and :func:`pipeline.sr.train.train_sr`
    called without a content loss skips the GAN phase with a warning unless
    ``force_perceptual`` (random VGG features).  ``gan_patch_size`` / ``gan_lr_g``: the
    GAN phase's LR patch side (x ``scale`` = the discriminator input, 128 or 256) and
    generator learning rate (SRGAN: 1e-4); ``patch_size`` / ``lr_g`` are the pixel phase's.
    """

    pretrain_iters: int = 800
    gan_iters: int = 150
    patch_size: int = 32
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
    gan_patch_size: int = 32
    gan_lr_g: float = 1.0e-4

    def validate(self, prefix: str) -> None:
        require(self.pretrain_iters >= 0, f"{prefix}.pretrain_iters", "must be >= 0")
        require(self.gan_iters >= 0, f"{prefix}.gan_iters", "must be >= 0")
        require(self.patch_size >= 4, f"{prefix}.patch_size", "must be >= 4 (LR pixels)")
        require(self.gan_patch_size >= 4, f"{prefix}.gan_patch_size", "must be >= 4 (LR pixels)")
        require(self.gan_lr_g > 0, f"{prefix}.gan_lr_g", "must be > 0")
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


#: Detector trunk layers the task-driven content loss may compare (``pipeline.detector.backbone``).
CONTENT_LAYERS = ("conv3_3", "conv4_3")


@dataclass(frozen=True)
class SRPerceptualConfig:
    """The task-driven content loss: ``steps`` / ``batch_size`` / ``lr`` of the feature
    detector's training on the HR train split (stage ``sr_features``; an SSD of the
    ``model`` section's input size, width, batch_norm and backbone weights), and the trunk
    ``layer`` whose features of SR and HR are compared (``conv4_3``: SSD's first source)."""

    layer: str = "conv4_3"
    steps: int = 200
    batch_size: int = 8
    lr: float = 0.01

    def validate(self, prefix: str) -> None:
        require(self.layer in CONTENT_LAYERS, f"{prefix}.layer", f"{self.layer!r} is not one of {list(CONTENT_LAYERS)}")
        require(self.steps >= 1, f"{prefix}.steps", "must be >= 1")
        require(self.batch_size >= 2, f"{prefix}.batch_size", "must be >= 2 (BatchNorm)")
        require(self.lr > 0, f"{prefix}.lr", "must be > 0")


@dataclass(frozen=True)
class SRConfig:
    """The whole ``sr`` section."""

    model: SRModelConfig = field(default_factory=SRModelConfig)
    train: SRTrainConfig = field(default_factory=SRTrainConfig)
    infer: SRInferConfig = field(default_factory=SRInferConfig)
    perceptual: SRPerceptualConfig = field(default_factory=SRPerceptualConfig)

    def validate(self, prefix: str) -> None:
        side = self.model.scale * self.train.gan_patch_size
        require(self.train.gan_iters == 0 or side in (128, 256), f"{prefix}.train.gan_patch_size",
                f"the GAN phase's discriminator takes 128 or 256 px HR patches; {self.train.gan_patch_size} LR px "
                f"x{self.model.scale} = {side}")


#: ``sr.train`` keys only the GAN phase reads (the pixel phase's fingerprint leaves them out).
GAN_ONLY = ("gan_iters", "lr_d", "pixel_weight", "perceptual_weight", "adversarial_weight", "vgg19_weights",
            "force_perceptual", "gan_patch_size", "gan_lr_g")


def pixel_phase(cfg: SRConfig) -> SRConfig:
    """The config of stage ``sr_train``: the pixel phase only, the GAN-only keys (and the
    discriminator width) at their defaults, so changing them neither resumes nor restarts it."""
    defaults = SRTrainConfig()
    train = dataclasses.replace(cfg.train, **({k: getattr(defaults, k) for k in GAN_ONLY} | {"gan_iters": 0}))
    model = dataclasses.replace(cfg.model, disc_num_feat=SRModelConfig().disc_num_feat)
    return SRConfig(model=model, train=train, infer=cfg.infer, perceptual=cfg.perceptual)


def gan_phase(cfg: SRConfig, generator: str) -> SRConfig:
    """The config of stage ``srgan_train``: ``gan_iters`` SRGAN steps from ``generator`` (the
    pixel phase's output) on ``gan_patch_size`` patches at ``gan_lr_g``."""
    t = cfg.train
    train = dataclasses.replace(t, pretrain_iters=0, patch_size=t.gan_patch_size, lr_g=t.gan_lr_g,
                                pretrained_generator=generator)
    return dataclasses.replace(cfg, train=train)

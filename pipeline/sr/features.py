"""The feature detector of the task-driven content loss (stage ``sr_features``).

A plain SSD (variant ``ssd``) of the ``model`` section's input size, width, BatchNorm and
backbone weights, trained by :func:`pipeline.detector.train.train` on the HR set's train
split for ``sr.perceptual.steps`` steps.  It is its own small training, not the main
detector (stage ``train``): that one may train on an SR set, which would make the SR
sets depend on themselves; this one only ever sees HR, so the DVC graph stays acyclic
whatever ``train.train_set`` is.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pipeline.detector.model import ModelConfig
from pipeline.detector.train import TrainConfig, train
from pipeline.sr.config import SRPerceptualConfig


def feature_detector_configs(model: ModelConfig, cfg: SRPerceptualConfig, seed: int) -> tuple[ModelConfig, TrainConfig]:
    """The detector and training configs: only ``model.{input_size, width, batch_norm,
    backbone_weights}`` carry over (a variant, anchor or matching change of the main
    detector does not retrain it); the schedule is :class:`TrainConfig`'s with
    ``sr.perceptual``'s steps, batch size and learning rate and the top-level seed."""
    mcfg = ModelConfig(input_size=model.input_size, width=model.width, batch_norm=model.batch_norm,
                       backbone_weights=model.backbone_weights)
    tcfg = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed)
    tcfg.validate("sr.perceptual")
    return mcfg, tcfg


def train_feature_detector(
    hr_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    model: ModelConfig,
    cfg: SRPerceptualConfig,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> Path:
    """Train it on ``hr_dir``'s train split into ``out_dir`` (resumable); returns ``<out>/model.pt``."""
    mcfg, tcfg = feature_detector_configs(model, cfg, seed)
    return train(mcfg, tcfg, hr_dir, out_dir, device=device).model_path

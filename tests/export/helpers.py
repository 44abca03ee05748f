"""Tiny detectors for the export tests (width 0.0625, the SSD300 input size)."""

from __future__ import annotations

import torch

from pipeline.detector.model import SSD, ModelConfig, build_detector

CLASSES = ["car", "person", "boat"]


def tiny_model(variant: str, batch_norm: bool = False, seed: int = 0) -> SSD:
    """A seeded eval-mode model; BatchNorm running statistics made non-trivial so eval BN is exercised."""
    torch.manual_seed(seed)
    model = build_detector(ModelConfig(variant=variant, width=0.0625, batch_norm=batch_norm), len(CLASSES),
                           init_backbone=False)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()

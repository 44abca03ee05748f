"""Shared fixtures of the predict tests: one tiny, randomly initialised but saved detector checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.detector.checkpoint import save_detector
from pipeline.detector.model import ModelConfig, build_detector

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VOC07 = SHARED / "voc" / "VOCdevkit" / "VOC2007" / "JPEGImages"
COCO_VAL = SHARED / "coco" / "val2017"
VOC_CLASSES = ("aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person "
               "pottedplant sheep sofa train tvmonitor").split()


def tiny_detector(num_classes: int, seed: int = 0) -> torch.nn.Module:
    """SSD300 at width 1/16 with BatchNorm (randomly initialised, eval mode).

    The class logits are scaled down (x0.05): a random BN model otherwise scores thousands of
    boxes ~0.9999, whose ties make the kept set depend on sort order rather than on the code.
    """
    torch.manual_seed(seed)
    cfg = ModelConfig(variant="ssd", width=0.0625, input_size=300, batch_norm=True)
    model = build_detector(cfg, num_classes, init_backbone=False).eval()
    with torch.no_grad():
        for p in model.head.cls.parameters():
            p.mul_(0.05)
    return model


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A saved tiny detector that records the 20 VOC class names, like a trained model.pt."""
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_detector(path, tiny_detector(len(VOC_CLASSES)), {"classes": VOC_CLASSES})
    return path


@pytest.fixture
def one_thread():
    """Run torch on one thread (the test machines' cores are shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

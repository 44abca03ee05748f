"""Post-processing of decoded SSD outputs: hard NMS and Soft-NMS (linear, Gaussian)."""

from __future__ import annotations

import torch
from torch import Tensor

from pipeline.postprocess.candidates import check_inputs
from pipeline.postprocess.config import PostprocessConfig
from pipeline.postprocess.detections import Detections
from pipeline.postprocess.nms import hard_nms
from pipeline.postprocess.soft_nms import soft_nms

__all__ = ["Detections", "PostprocessConfig", "postprocess", "hard_nms", "soft_nms"]


@torch.no_grad()
def postprocess(boxes: Tensor, scores: Tensor, cfg: PostprocessConfig) -> list[Detections]:
    """Decoded boxes (N, A, 4) xyxy and class scores (N, A, C) -> N per-image Detections.

    Labels are 0-based class indices (the background column is already removed by
    ``SSD.decode``).  Runs on the input's device; boxes keep the input's frame.
    """
    check_inputs(boxes, scores)
    if cfg.method == "nms":
        return hard_nms(boxes, scores, cfg)
    return soft_nms(boxes, scores, cfg)

"""The per-image detection record returned by post-processing."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Detections:
    """Final detections of one image.

    Attributes:
        boxes: (k, 4) float32 xyxy (normalised [0, 1] straight from ``postprocess``;
            pixels after :func:`pipeline.evaluation.infer.predict_set`).
        scores: (k,) float32, sorted descending.
        labels: (k,) int64 0-based class index (background excluded).
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @staticmethod
    def empty(device: torch.device | str = "cpu") -> Detections:
        return Detections(
            torch.zeros((0, 4), dtype=torch.float32, device=device),
            torch.zeros((0,), dtype=torch.float32, device=device),
            torch.zeros((0,), dtype=torch.int64, device=device),
        )

    def to(self, device: torch.device | str) -> Detections:
        return Detections(self.boxes.to(device), self.scores.to(device), self.labels.to(device))

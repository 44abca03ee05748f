"""Post-processing parameters (params: ``evaluate.postprocess`` plus per-method overrides)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.config import require

Method = Literal["nms", "soft_linear", "soft_gaussian"]


@dataclass(frozen=True)
class PostprocessConfig:
    """How raw per-anchor class scores become final detections.

    Attributes:
        method: ``nms`` (hard NMS, SSD), ``soft_linear`` (Soft-NMS, s·(1−IoU) when
            IoU ≥ ``iou_threshold``) or ``soft_gaussian`` (Soft-NMS, s·exp(−IoU²/σ)),
            Bodla et al. 2017.
        score_threshold: candidates need a class score > this (SSD: 0.01).
        iou_threshold: hard-NMS overlap threshold and the linear Soft-NMS threshold t.
        sigma: Gaussian Soft-NMS σ (paper: 0.5).
        top_k: detections kept per image after suppression (SSD: 200).
        min_score: Soft-NMS floor: a box whose decayed score falls below it is dropped.
        candidates_per_class: at most this many highest-scoring candidates per
            (image, class) enter suppression (SSD Caffe ``nms_param.top_k`` = 400).
            It bounds the (K×K) IoU work; a box ranked lower could only have
            survived if ≥ ``candidates_per_class`` higher boxes of its class were
            decayed below it, i.e. only in extremely crowded classes.
    """

    method: Method = "nms"
    score_threshold: float = 0.01
    iou_threshold: float = 0.45
    sigma: float = 0.5
    top_k: int = 200
    min_score: float = 0.001
    candidates_per_class: int = 400

    def validate(self, prefix: str = "postprocess") -> None:
        require(0.0 <= self.score_threshold < 1.0, f"{prefix}.score_threshold", "must be in [0, 1)")
        require(0.0 < self.iou_threshold <= 1.0, f"{prefix}.iou_threshold", "must be in (0, 1]")
        require(self.sigma > 0.0, f"{prefix}.sigma", "must be > 0")
        require(self.top_k >= 1, f"{prefix}.top_k", "must be >= 1")
        require(0.0 < self.min_score < 1.0, f"{prefix}.min_score", "must be in (0, 1): the Soft-NMS floor")
        require(self.candidates_per_class >= 1, f"{prefix}.candidates_per_class", "must be >= 1")

    def with_score_floor(self, score: float) -> PostprocessConfig:
        """This config with candidates already scoring >= ``score`` before NMS and any merge across tiles.

        For ``nms``/``softnms`` the kept boxes are the same as filtering afterwards (a box below the
        floor only ever suppresses or decays boxes scoring less than itself).  For the ``greedy`` tile
        merge it is SAHI's order (its confidence threshold comes first): merged after, every box grew
        into the union of its low-score neighbours (README "Predict, sliced inference and export").
        """
        return dataclasses.replace(self, score_threshold=max(self.score_threshold, float32_below(score)))


def float32_below(score: float) -> float:
    """The largest float32 below every float32 that is >= ``score``: for float32 class scores,
    ``s > float32_below(score)`` is exactly ``s >= score`` (``score`` itself may not be a float32)."""
    at_or_above = np.float32(score)
    if float(at_or_above) < score:  # rounded down: the next float32 up is the first one >= score
        return float(at_or_above)
    return float(np.nextafter(at_or_above, np.float32(-math.inf)))

"""SSD300 and its small-object variants, composed from the variant string.

``build_detector(ModelConfig(variant="shallow+fem"), num_classes=20)`` assembles:
VGG16 backbone (+ SSD extras) → prediction sources (plain SSD sources, or MDSSD
fusion modules) → optional FEM per source → SSD heads, plus the default boxes and
the matcher (IoU with per-anchor thresholds, or ATSS).  Channel counts, map sizes
and boxes per cell are derived from the modules (a shape probe on the ``meta``
device), not declared.

CLI: ``python -m pipeline.detector.model --variant shallow --width 1`` prints
:func:`describe` as JSON (default boxes and parameters per level).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain

import torch
from torch import Tensor, nn

from pipeline.config import ConfigError, require
from pipeline.detector.anchors import LevelSpec, caffe_sizes, default_boxes, level_step
from pipeline.detector.backbone import SSDBackbone
from pipeline.detector.coding import cxcywh_to_xyxy, decode
from pipeline.detector.fem import SourceEnhancer
from pipeline.detector.heads import SSDHead
from pipeline.detector.loss import multibox_loss
from pipeline.detector.matching import match_atss, match_iou
from pipeline.detector.mdssd import MODULES as MDSSD_MODULES
from pipeline.detector.mdssd import MDSSDSources
from pipeline.detector.sources import SSDSources
from pipeline.detector.variants import Variant, parse_variant
from pipeline.detector.weights import init_random, load_vgg16_weights

log = logging.getLogger(__name__)

# ImageNet statistics of torchvision's VGG16 weights (RGB, [0, 1] input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Extra aspect ratios per source (SSD300 Caffe config: {2} on conv4_3, conv10_2,
#: conv11_2 — 4 boxes; {2, 3} on fc7, conv8_2, conv9_2 — 6 boxes).  conv3_3
#: (``shallow``) gets {2} like conv4_3.  MDSSD: 4 boxes on Module2, conv10_2,
#: conv11_2 and 6 elsewhere (Module1, Module3, conv8_2, conv9_2).
RATIOS: dict[str, tuple[int, ...]] = {
    "conv3_3": (2,),
    "conv4_3": (2,),
    "fc7": (2, 3),
    "conv8_2": (2, 3),
    "conv9_2": (2, 3),
    "conv10_2": (2,),
    "conv11_2": (2,),
    "module1": (2, 3),
    "module2": (2,),
    "module3": (2, 3),
}
#: MDSSD: Module1 uses Module2's box sizes (Xu et al.); it is not a scale level of its own.
SHARED_SIZES = {"module1": "module2"}
SSD_SOURCES = ("conv4_3", "fc7", "conv8_2", "conv9_2", "conv10_2", "conv11_2")


@dataclass(frozen=True)
class ModelConfig:
    """Params section ``model``.

    Attributes:
        variant: ``"ssd"`` or a '+'-joined subset of shallow, fem, atss, mdssd.
        input_size: square input side S (300 for SSD300).
        width: VGG/extras channel multiplier (< 1 only for CPU-sized runs).
        backbone_weights: torchvision VGG16 ImageNet state-dict path, ``"download"``,
            or None (random init, logged as a WARNING).  Needs width 1; with
            ``batch_norm`` a ``vgg16_bn`` state dict.
        batch_norm: BatchNorm before every ReLU of backbone, extras and MDSSD modules
            (ScratchDet, Zhu et al. ICCV 2019: trains from scratch, tolerates a larger
            lr).  False = the published SSD300 layer stack.
        first_scale, min_scale, max_scale: default-box scales (fractions of S) by
            the Caffe rule (:mod:`pipeline.detector.anchors`): finest source
            ``first_scale``; the others from ``min_scale`` to ``max_scale``.
        iou_threshold: IoU for a positive default box (SSD: 0.5).
        small_iou_threshold: IoU for a positive on the ``shallow`` conv3_3 level (thesis: 0.3).
        atss_topk: ATSS candidates per level (Zhang et al.: 11 for SSD).
        neg_pos_ratio: hard negatives per positive (SSD: 3).
    """

    variant: str = "ssd"
    input_size: int = 300
    width: float = 1.0
    backbone_weights: str | None = None
    batch_norm: bool = False
    first_scale: float = 0.1
    min_scale: float = 0.2
    max_scale: float = 0.9
    iou_threshold: float = 0.5
    small_iou_threshold: float = 0.3
    atss_topk: int = 11
    neg_pos_ratio: int = 3

    def validate(self, prefix: str = "model") -> None:
        parse_variant(self.variant, f"{prefix}.variant")
        require(
            64 <= self.input_size <= 2048,
            f"{prefix}.input_size",
            f"must be in [64, 2048], got {self.input_size}",
        )
        require(0 < self.width <= 4, f"{prefix}.width", f"must be in (0, 4], got {self.width}")
        require(
            self.backbone_weights is None or self.width == 1.0,
            f"{prefix}.backbone_weights",
            f"pretrained VGG16 weights need width 1.0, got width {self.width}",
        )
        require(
            0 < self.first_scale < self.min_scale < self.max_scale <= 1.5,
            f"{prefix}.first_scale",
            "need 0 < first_scale < min_scale < max_scale <= 1.5, got "
            f"{self.first_scale}, {self.min_scale}, {self.max_scale}",
        )
        for name in ("iou_threshold", "small_iou_threshold"):
            v = getattr(self, name)
            require(0 < v <= 1, f"{prefix}.{name}", f"must be in (0, 1], got {v}")
        require(self.atss_topk >= 1, f"{prefix}.atss_topk", f"must be >= 1, got {self.atss_topk}")
        require(self.neg_pos_ratio >= 1, f"{prefix}.neg_pos_ratio", f"must be >= 1, got {self.neg_pos_ratio}")

    @property
    def parsed_variant(self) -> Variant:
        return parse_variant(self.variant)


class SSD(nn.Module):
    """Single-shot detector: backbone → sources → (FEM) → heads, with default boxes and matcher.

    Built by :func:`build_detector`; see the module docstring.

    Attributes:
        config, num_classes (without background), levels (:class:`LevelSpec` per source).
        anchors: buffer (A, 4) cxcywh in [0, 1]; anchor_levels: buffer (A,) int64;
        anchor_iou_threshold: buffer (A,) positive IoU per anchor (IoU matcher).
    """

    def __init__(
        self,
        config: ModelConfig,
        num_classes: int,
        backbone: SSDBackbone,
        sources: nn.Module,
        enhancer: nn.Module,
        head: SSDHead,
        levels: Sequence[LevelSpec],
        thresholds: Sequence[float],
    ) -> None:
        super().__init__()
        self.config, self.num_classes = config, num_classes
        self.variant = config.parsed_variant
        self.backbone, self.sources, self.enhancer, self.head = backbone, sources, enhancer, head
        self.levels = tuple(levels)
        anchors, level_index = default_boxes(self.levels, config.input_size)
        per_anchor_thr = torch.tensor(thresholds, dtype=torch.float32)[level_index]
        self.register_buffer("anchors", anchors, persistent=False)
        self.register_buffer("anchors_xyxy", cxcywh_to_xyxy(anchors), persistent=False)
        self.register_buffer("anchor_levels", level_index, persistent=False)
        self.register_buffer("anchor_iou_threshold", per_anchor_thr, persistent=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        counts = [lv.num_anchors for lv in self.levels]
        ends = list(accumulate(counts))
        self.level_bounds = tuple(zip([0, *ends[:-1]], ends, strict=True))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images (N, 3, S, S) float in [0, 1] (or uint8 0..255), RGB.

        Returns:
            cls_logits (N, A, C+1) (index 0 = background), box_deltas (N, A, 4) encoded offsets.
        """
        s = self.config.input_size
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (s, s):
            raise ValueError(f"expected images of shape (N, 3, {s}, {s}), got {tuple(images.shape)}")
        feats = self.enhancer(self.sources(self.backbone(self.normalize(images))))
        return self.head(feats)

    def normalize(self, images: Tensor) -> Tensor:
        """The network's input contract: RGB (N, 3, H, W) in [0, 1] (or uint8 0..255) ->
        ImageNet-standardised float (what the backbone sees; also the SR content loss's input)."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return (images - self.mean) / self.std

    def match(self, gt_boxes: Tensor, gt_labels: Tensor) -> tuple[Tensor, Tensor]:
        """Per-anchor targets: labels (N, A) (0 = background), matched boxes (N, A, 4) xyxy."""
        if gt_boxes.dim() != 3 or gt_boxes.shape[-1] != 4 or gt_labels.shape != gt_boxes.shape[:2]:
            raise ValueError(
                f"expected gt_boxes (N, G, 4) and gt_labels (N, G), got {tuple(gt_boxes.shape)} "
                f"and {tuple(gt_labels.shape)}"
            )
        if self.variant.atss:
            return match_atss(
                gt_boxes, gt_labels, self.anchors, self.anchors_xyxy, self.level_bounds, self.config.atss_topk
            )
        return match_iou(gt_boxes, gt_labels, self.anchors_xyxy, self.anchor_iou_threshold)

    def loss(
        self, cls_logits: Tensor, box_deltas: Tensor, gt_boxes: Tensor, gt_labels: Tensor
    ) -> dict[str, Tensor]:
        """Multibox loss; gt_boxes (N, G, 4) normalised xyxy, gt_labels (N, G) 1..C, 0 = padding.

        Returns ``{"loss", "cls", "box"}`` scalars (no host sync).
        """
        if cls_logits.shape[0] != gt_boxes.shape[0]:
            raise ValueError(f"batch of {cls_logits.shape[0]} predictions but {gt_boxes.shape[0]} GT rows")
        labels, boxes = self.match(gt_boxes, gt_labels)
        return multibox_loss(cls_logits, box_deltas, labels, boxes, self.anchors, self.config.neg_pos_ratio)

    def decode(self, cls_logits: Tensor, box_deltas: Tensor) -> tuple[Tensor, Tensor]:
        """-> boxes (N, A, 4) xyxy in [0, 1] (clamped), scores (N, A, C) softmax without background."""
        boxes = decode(box_deltas, self.anchors).clamp(0.0, 1.0)
        scores = torch.softmax(cls_logits.float(), dim=-1)[..., 1:]
        return boxes, scores


def _meta_forward(module: nn.Module, x: Tensor):
    """Run ``module`` on the meta device (shapes only, no compute, weights untouched)."""
    state = {
        k: torch.empty_like(v, device="meta")
        for k, v in chain(module.named_parameters(), module.named_buffers())
    }
    return torch.func.functional_call(module, state, (x,))


def _level_specs(
    names: Sequence[str], sizes: Mapping[str, int], strides: Mapping[str, int], cfg: ModelConfig
) -> list[LevelSpec]:
    scale_levels = [n for n in names if n not in SHARED_SIZES]
    px = dict(
        zip(
            scale_levels,
            caffe_sizes(len(scale_levels), cfg.input_size, cfg.first_scale, cfg.min_scale, cfg.max_scale),
            strict=True,
        )
    )
    specs = []
    for n in names:
        lo, hi = px[SHARED_SIZES.get(n, n)]
        step = level_step(strides[n], sizes[n], cfg.input_size)
        specs.append(LevelSpec(n, sizes[n], step, lo, hi, RATIOS[n]))
    return specs


def build_detector(cfg: ModelConfig, num_classes: int, init_backbone: bool = True) -> SSD:
    """Compose the SSD variant named by ``cfg.variant``.

    Args:
        cfg: model params (validated here).
        num_classes: object classes, EXCLUDING background.
        init_backbone: load ``cfg.backbone_weights`` (False when a checkpoint will overwrite them).
    Raises:
        ConfigError: bad config or an input size too small for the SSD300 layer stack.
    """
    cfg.validate("model")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    variant = cfg.parsed_variant
    backbone = SSDBackbone(cfg.width, cfg.batch_norm)
    init_random(backbone.trunk, backbone=True)
    init_random(backbone.extras, backbone=False)
    # batch 2: a train-mode BatchNorm on the 1×1 conv11_2 map needs more than one value
    x = torch.empty(2, 3, cfg.input_size, cfg.input_size, device="meta")
    try:
        maps = _meta_forward(backbone, x)
    except RuntimeError as exc:
        raise ConfigError(
            f"model.input_size: {cfg.input_size} is too small for the SSD layer stack ({exc})"
        ) from exc
    sizes = {k: int(v.shape[-1]) for k, v in maps.items()}
    strides = dict(backbone.strides)
    if variant.mdssd:
        sources: nn.Module = MDSSDSources(backbone.channels, sizes, cfg.width, cfg.batch_norm)
        init_random(sources, backbone=False)
        for name, shallow, _, _ in MDSSD_MODULES:
            strides[name] = strides[shallow]
    else:
        names = (("conv3_3",) if variant.shallow else ()) + SSD_SOURCES
        sources = SSDSources(names, backbone.channels)
    src_maps = torch.func.functional_call(
        sources,
        {
            k: torch.empty_like(v, device="meta")
            for k, v in chain(sources.named_parameters(), sources.named_buffers())
        },
        (maps,),
    )
    src_sizes = dict(zip(sources.names, (int(m.shape[-1]) for m in src_maps), strict=True))
    levels = _level_specs(sources.names, src_sizes, strides, cfg)
    enhancer = (
        SourceEnhancer(sources.out_channels, [lv.size for lv in levels]) if variant.fem else nn.Identity()
    )
    head = SSDHead(sources.out_channels, [lv.boxes_per_cell for lv in levels], num_classes + 1)
    small = {"conv3_3"} if variant.shallow else set()
    thresholds = [cfg.small_iou_threshold if lv.name in small else cfg.iou_threshold for lv in levels]
    model = SSD(cfg, num_classes, backbone, sources, enhancer, head, levels, thresholds)
    if init_backbone:
        if cfg.backbone_weights is None:
            log.warning(
                "model.backbone_weights is None: VGG16 backbone randomly initialised (Kaiming); "
                "SSD's published results need ImageNet weights"
            )
        else:
            load_vgg16_weights(backbone.trunk, cfg.backbone_weights)  # vgg16 or vgg16_bn by the trunk
    return model


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(model: SSD) -> dict:
    """Default boxes and parameters: totals, per part and per prediction level."""
    return {
        "variant": model.variant.name,
        "input_size": model.config.input_size,
        "width": model.config.width,
        "batch_norm": model.config.batch_norm,
        "num_classes": model.num_classes,
        "anchors": int(model.anchors.shape[0]),
        "params": _params(model),
        "params_by_part": {
            "backbone": _params(model.backbone),
            "sources": _params(model.sources),
            "fem": _params(model.enhancer),
            "head": _params(model.head),
        },
        "levels": [
            {
                "name": lv.name,
                "size": lv.size,
                "cells": lv.size * lv.size,
                "boxes_per_cell": lv.boxes_per_cell,
                "anchors": lv.num_anchors,
                "min_size": lv.min_size,
                "max_size": lv.max_size,
                "step": lv.step,
                "iou_threshold": float(model.anchor_iou_threshold[start]),
            }
            for lv, (start, _) in zip(model.levels, model.level_bounds, strict=True)
        ],
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Print default-box and parameter counts of an SSD variant.")
    p.add_argument("--variant", default="ssd")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--input-size", type=int, default=300)
    p.add_argument("--num-classes", type=int, default=20)
    p.add_argument("--batch-norm", action="store_true", help="ScratchDet BatchNorm (model.batch_norm)")
    a = p.parse_args(argv)
    cfg = ModelConfig(variant=a.variant, width=a.width, input_size=a.input_size, batch_norm=a.batch_norm)
    print(json.dumps(describe(build_detector(cfg, a.num_classes, init_backbone=False)), indent=2))


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)

__all__ = ["SSD", "ModelConfig", "build_detector", "describe"]

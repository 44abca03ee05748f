"""Params section ``evaluate``: the evaluation matrix {sets} × {post-processing methods}."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.config import ConfigError, parse, require
from pipeline.postprocess.config import PostprocessConfig
from pipeline.slicing import SliceConfig


def _default_methods() -> dict[str, dict[str, Any]]:
    return {
        "nms": {"method": "nms"},
        "softnms": {"method": "soft_linear"},
        "softnms_gauss": {"method": "soft_gaussian"},
    }


def _check_device(device: str, key: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:<i>`` (present on this machine), ``mps`` (when available)."""
    import torch

    if device in ("auto", "cpu"):
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        dev = None
    require(dev is not None and dev.type in ("cuda", "mps"), key,
            f"unknown device {device!r} (auto | cpu | cuda | cuda:<index> | mps)")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        require(count > 0, key, f"{device!r} requested but this machine has no CUDA device (use auto or cpu)")
        require(dev.index is None or dev.index < count, key, f"{device!r}: this machine has {count} CUDA device(s)")
    else:
        require(torch.backends.mps.is_available(), key, f"{device!r} requested but MPS is not available here")


@dataclass(frozen=True)
class BootstrapConfig:
    """Intervals over test images (:mod:`pipeline.evaluation.bootstrap`).

    resamples: bootstrap resamples of the test images (0: no intervals, no ``bootstrap.json``).
    level: interval coverage (0.95: 2.5th-97.5th percentiles).
    seed: resample seed; runs with the same seed and test images share resamples, so a study
        can pair them.
    """

    resamples: int = 1000
    level: float = 0.95
    seed: int = 0

    def validate(self, prefix: str) -> None:
        require(self.resamples == 0 or self.resamples >= 100, f"{prefix}.resamples",
                f"must be 0 (off) or >= 100 for a percentile interval, got {self.resamples}")
        require(0.5 <= self.level < 1.0, f"{prefix}.level", f"must be in [0.5, 1), got {self.level}")


@dataclass(frozen=True)
class EvaluateConfig:
    """Attributes:
    split: split evaluated in every set.
    batch_size, num_workers: inference batching and DataLoader workers.
    device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1`` …
    coco_backend: ``faster`` (faster-coco-eval, the default: identical numbers, several
        times faster on COCO-sized workloads) or ``pycocotools``.
    postprocess: settings shared by every method (SSD: score > 0.01, IoU 0.45, top 200).
    methods: method name -> overrides of ``postprocess`` (at least ``method``); the
        names appear in metric keys ``<set>.<name>.map``.
    pr_classes: classes pictured in the PR plots and PNGs: ``auto`` (the default: the smallest
        classes by mean relative area in the evaluated ground truth, so any dataset gets useful
        plots) or a list of class names, each checked against the data (thesis: bottle,
        pottedplant, cat, dog on VOC).
    summary_sets, summary_small_sets: the sets whose mAP@0.5 (NMS, Soft-NMS) / small-object AP
        are headline numbers in ``summary.json`` (each must be evaluated); the full matrix has
        every set.
    pictures: number of test images drawn side by side across the sets.
    picture_method, picture_score: which method's detections are drawn, and above which score.
    bootstrap: 95 % intervals over test images for every mAP and the within-run comparisons
        (:class:`BootstrapConfig`), written to ``bootstrap.json`` and the report.
    slice: null (whole images) or sliced inference settings (:class:`pipeline.slicing.SliceConfig`:
        size, overlap, merge, merge_threshold, full_image), for sets of large images.
    """

    split: str = "test"
    batch_size: int = 8
    num_workers: int = 0
    device: str = "auto"
    coco_backend: Literal["pycocotools", "faster"] = "faster"
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    methods: dict[str, Any] = field(default_factory=_default_methods)
    pr_classes: str | list[str] = "auto"
    summary_sets: list[str] = field(default_factory=lambda: ["hr", "sr", "lr"])
    summary_small_sets: list[str] = field(default_factory=lambda: ["hr", "sr"])
    pictures: int = 4
    picture_method: str = "softnms"
    picture_score: float = 0.3
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    slice: SliceConfig | None = None

    def method_configs(self, prefix: str = "evaluate") -> dict[str, PostprocessConfig]:
        """Each method's full :class:`PostprocessConfig` (shared settings + its overrides)."""
        base = dataclasses.asdict(self.postprocess)
        out = {}
        for name, override in self.methods.items():
            key = f"{prefix}.methods.{name}"
            if not isinstance(override, dict) or "method" not in override:
                raise ConfigError(f"{key}: expected a mapping with at least 'method', got {override!r}")
            out[name] = parse(PostprocessConfig, {**base, **override}, key)
        return out

    def validate(self, prefix: str = "evaluate") -> None:
        _check_device(self.device, f"{prefix}.device")
        require(self.batch_size >= 1, f"{prefix}.batch_size", "must be >= 1")
        require(self.num_workers >= 0, f"{prefix}.num_workers", "must be >= 0")
        require(self.pictures >= 0, f"{prefix}.pictures", "must be >= 0")
        require(bool(self.methods), f"{prefix}.methods", "needs at least one method")
        require(all("." not in n for n in self.methods), f"{prefix}.methods", "names may not contain '.'")
        require(0.0 <= self.picture_score <= 1.0, f"{prefix}.picture_score", "must be in [0, 1]")
        self.method_configs(prefix)
        require(self.pr_classes == "auto" or isinstance(self.pr_classes, list), f"{prefix}.pr_classes",
                f"expected 'auto' or a list of class names, got {self.pr_classes!r}")
        for key in ("summary_sets", "summary_small_sets"):
            names = getattr(self, key)
            require(len(set(names)) == len(names), f"{prefix}.{key}", f"lists a set twice: {names}")
        require(
            self.pictures == 0 or self.picture_method in self.methods,
            f"{prefix}.picture_method",
            f"{self.picture_method!r} is not one of the methods {sorted(self.methods)}",
        )

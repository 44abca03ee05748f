"""Detector checkpoints that know which model they belong to.

A checkpoint is a ``torch.save`` dict: ``format``, ``variant`` (canonical),
``config`` (the :class:`ModelConfig` as a dict), ``num_classes``, ``state_dict`` and
``extra`` (e.g. ``classes``, epoch, optimiser state).  Written atomically.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from pipeline.config import ConfigError
from pipeline.detector.model import SSD, ModelConfig, build_detector
from pipeline.runstate import CheckpointError, load_state, save_state

__all__ = ["CheckpointError", "CheckpointMismatchError", "load_detector", "load_weights_into", "read_checkpoint",
           "save_detector"]

FORMAT = 1
#: Config fields that only say how the backbone was initialised, not what the model is.
_INIT_ONLY = ("backbone_weights",)


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was made for a different variant / config / class count than the model."""


def _identity(cfg: ModelConfig, num_classes: int) -> dict[str, Any]:
    d = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _INIT_ONLY}
    d["variant"] = cfg.parsed_variant.name  # "fem+shallow" == "shallow+fem"
    d["num_classes"] = num_classes
    return d


def save_detector(path: str | os.PathLike[str], model: SSD, extra: dict[str, Any] | None = None) -> None:
    """Save ``model`` (weights + variant + config + num_classes) and ``extra`` atomically."""
    payload = {
        "format": FORMAT,
        "variant": model.variant.name,
        "config": dataclasses.asdict(model.config),
        "num_classes": model.num_classes,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    save_state(path, payload)


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check the checkpoint dict (tensors on ``map_location``)."""
    ckpt = load_state(path, "detector checkpoint", map_location)
    missing = [
        k
        for k in ("format", "config", "num_classes", "state_dict")
        if not isinstance(ckpt, dict) or k not in ckpt
    ]
    if missing:
        raise CheckpointError(f"{path}: not a detector checkpoint (missing {missing})")
    if ckpt["format"] != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {ckpt['format']} (this code reads {FORMAT})")
    return ckpt


def _config_of(ckpt: dict[str, Any], path: Path) -> ModelConfig:
    try:
        cfg = ModelConfig(**ckpt["config"])
        cfg.validate("model")  # e.g. a variant string this code no longer accepts
        return cfg
    except (TypeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: recorded model config is not valid here ({exc})") from exc


def load_detector(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[SSD, dict[str, Any]]:
    """Rebuild the recorded model and load its weights; returns ``(model, extra)``."""
    ckpt = read_checkpoint(path, map_location)
    cfg = _config_of(ckpt, Path(path))
    model = build_detector(cfg, int(ckpt["num_classes"]), init_backbone=False)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location), dict(ckpt.get("extra", {}))


def load_weights_into(model: SSD, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint's weights into an existing ``model``; returns ``extra``.

    Raises:
        CheckpointMismatchError: naming both sides when variant, config (other than
            ``backbone_weights``) or num_classes differ.
    """
    ckpt = read_checkpoint(path)
    theirs = _identity(_config_of(ckpt, Path(path)), int(ckpt["num_classes"]))
    ours = _identity(model.config, model.num_classes)
    if theirs != ours:
        diff = {
            k: (theirs.get(k), ours.get(k))
            for k in sorted(set(theirs) | set(ours))
            if theirs.get(k) != ours.get(k)
        }
        raise CheckpointMismatchError(
            f"{path}: checkpoint is variant {theirs['variant']!r} ({theirs['num_classes']} classes), "
            f"model is variant {ours['variant']!r} ({ours['num_classes']} classes); "
            f"differing (checkpoint, model): {diff}"
        )
    model.load_state_dict(ckpt["state_dict"])
    return dict(ckpt.get("extra", {}))

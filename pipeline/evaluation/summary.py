"""The headline numbers of one evaluation: ``<out>/summary.json``, the metrics DVC shows by default.

About a dozen numbers, short keys, so ``dvc metrics show``, ``dvc metrics diff`` and
``dvc exp show --only-changed --no-pager --drop "data/|Created|State|Executor"`` fit a 160-column terminal (the full matrix stays in
``metrics.json``: ``python -m pipeline.evaluation.show``)::

    {"hr": {"nms": .., "soft": .., "small": ..}, "sr": {..}, "lr": {"nms": .., "soft": ..},
     "srgan": {"nms": ..},   # when an srgan set is evaluated (NMS_ONLY_SETS)
     "psnr_gain": ..,   # SR PSNR minus bicubic PSNR, dB (sr_quality.json)
     "loss": .., "img_s": ..}   # training: last logged loss, throughput (dvclive metrics.json)

``<set>.nms`` / ``<set>.soft`` (``evaluate.summary_sets``): VOC mAP@0.5 (all-point) with the
first hard-NMS / first Soft-NMS method of ``evaluate.methods``; ``<set>.small``
(``evaluate.summary_small_sets``): COCO AP_small (AP@[.5:.95] of objects < 32² px in the
HR frame) with the Soft-NMS method.  ``srgan.nms`` (:data:`NMS_ONLY_SETS`, when that set is
evaluated): the SRGAN set's mAP@0.5 with hard NMS only, to keep the headline small.  An undefined value (no
ground truth in a bucket, no such method, no input file) is absent, never -1.

Beside it, ``<out>/context.json`` keeps the inputs the report needs (the whole SR quality
and training metrics, the checkpoint, the sets), so :func:`pipeline.evaluation.report.build_report`
works from the out dir alone.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.atomic import write_json
from pipeline.errors import PipelineError
from pipeline.evaluation.config import EvaluateConfig
from pipeline.postprocess import PostprocessConfig

SUMMARY = "summary.json"
CONTEXT = "context.json"
#: Sets whose headline is their hard-NMS mAP@0.5 alone, whenever they are evaluated.
NMS_ONLY_SETS = ("srgan",)


class SummaryInputError(PipelineError, ValueError):
    """An input of the summary (SR quality, training metrics) is missing or malformed; names file and key."""


def read_json_input(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """A JSON object from ``path``; one-line errors name the file and what it was meant to be."""
    path = Path(path)
    if not path.is_file():
        raise SummaryInputError(f"{path}: {what} file not found")
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SummaryInputError(f"{path}: {what} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SummaryInputError(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


def _number(data: Mapping[str, Any], dotted: str, source: str) -> float | None:
    """``data[a][b]`` for ``"a.b"``: a finite number, None for null/NaN; a missing key or a non-number is an error."""
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise SummaryInputError(f"{source}: missing key {dotted!r}")
        value = value[part]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SummaryInputError(f"{source}: {dotted!r} must be a number, got {value!r}")
    return float(value) if math.isfinite(value) else None


def check_inputs(sr_quality: Mapping[str, Any] | None, train_metrics: Mapping[str, Any] | None,
                 sources: tuple[str, str] = ("sr_quality", "train_metrics")) -> None:
    """Fail in one line now, not after the evaluation, if an input lacks a headline number."""
    if sr_quality is not None:
        _number(sr_quality, "psnr_gain_db", sources[0])
    if train_metrics is not None:
        _number(train_metrics, "train.loss", sources[1])
        _number(train_metrics, "train.img_per_s", sources[1])


def check_summary_sets(cfg: EvaluateConfig, sets: Mapping[str, Any]) -> None:
    """Every headline set is one of the evaluated sets (one line naming the key and the first that is not)."""
    for key in ("summary_sets", "summary_small_sets"):
        missing = [s for s in getattr(cfg, key) if s not in sets]
        if missing:
            raise SummaryInputError(f"evaluate.{key}: {missing[0]!r} is not an evaluated set (sets: {list(sets)})")


def headline_methods(methods: Mapping[str, PostprocessConfig]) -> dict[str, str]:
    """``{"nms": <first hard-NMS method name>, "soft": <first Soft-NMS method name>}``, those present."""
    out: dict[str, str] = {}
    for name, cfg in methods.items():
        kind = "nms" if cfg.method == "nms" else "soft" if cfg.method.startswith("soft") else None
        if kind is not None:
            out.setdefault(kind, name)
    return out


def _put(target: dict[str, Any], key: str, value: float | None, digits: int) -> None:
    if value is not None and math.isfinite(value):
        target[key] = round(float(value), digits)


def build_summary(
    metrics: Mapping[str, float | None],
    methods: Mapping[str, PostprocessConfig],
    sets: Sequence[str],
    small_sets: Sequence[str] = (),
    sr_quality: Mapping[str, Any] | None = None,
    train_metrics: Mapping[str, Any] | None = None,
    nms_sets: Sequence[str] = (),
) -> dict[str, Any]:
    """The headline dict (see module docstring) from the flat matrix and the optional inputs;
    ``nms_sets``: sets headlined by their hard-NMS mAP alone (:data:`NMS_ONLY_SETS`)."""
    kinds = headline_methods(methods)
    small_method = kinds.get("soft", kinds.get("nms"))
    out: dict[str, Any] = {}
    for s in dict.fromkeys([*sets, *small_sets, *nms_sets]):
        row: dict[str, Any] = {}
        for kind, name in kinds.items():
            if s in sets or (s in nms_sets and kind == "nms"):
                _put(row, kind, metrics.get(f"{s}.{name}.map"), 4)
        if small_method is not None and s in small_sets:
            _put(row, "small", metrics.get(f"{s}.{small_method}.ap_small"), 4)
        if row:
            out[s] = row
    if sr_quality is not None:
        _put(out, "psnr_gain", _number(sr_quality, "psnr_gain_db", "sr_quality"), 3)
    if train_metrics is not None:
        _put(out, "loss", _number(train_metrics, "train.loss", "train_metrics"), 4)
        _put(out, "img_s", _number(train_metrics, "train.img_per_s", "train_metrics"), 1)
    return out


def write_summary(out_dir: str | os.PathLike[str], summary: Mapping[str, Any], context: Mapping[str, Any]) -> Path:
    """Write ``context.json`` then ``summary.json`` (each atomically) into ``out_dir``; returns the summary path."""
    out = Path(out_dir)
    write_json(out / CONTEXT, dict(context))
    write_json(out / SUMMARY, dict(summary))
    return out / SUMMARY


def summarise(
    out_dir: str | os.PathLike[str],
    metrics: Mapping[str, float | None],
    cfg: EvaluateConfig,
    sets: Mapping[str, str],
    checkpoint: str,
    reference: str,
    sr_quality: str | None = None,
    train_metrics: str | None = None,
    figures: Sequence[str] = (),
) -> dict[str, Any]:
    """Read the optional input files, write ``context.json`` and ``summary.json``; returns the summary.

    Args:
        sets: set name -> directory, in the order the report lists them.
        sr_quality, train_metrics: paths of ``sr_quality.json`` / the training dvclive ``metrics.json``.
        figures: extra figure paths for the report (kept relative to ``out_dir``).
    """
    sr = read_json_input(sr_quality, "SR quality") if sr_quality else None
    train = read_json_input(train_metrics, "training metrics") if train_metrics else None
    check_inputs(sr, train, (str(sr_quality), str(train_metrics)))
    methods = cfg.method_configs()
    check_summary_sets(cfg, sets)
    nms_sets = [s for s in NMS_ONLY_SETS if s in sets]
    summary = build_summary(metrics, methods, cfg.summary_sets, cfg.summary_small_sets, sr, train, nms_sets)
    context = {
        "checkpoint": str(checkpoint), "reference": str(reference), "split": cfg.split,
        "sets": {k: str(v) for k, v in sets.items()},
        "methods": {k: m.method for k, m in methods.items()},
        "headline_methods": headline_methods(methods),
        "sr_quality": sr, "train": train,
        "figures": [Path(os.path.relpath(f, out_dir)).as_posix() for f in figures],
    }  # fmt: skip
    write_summary(out_dir, summary, context)
    return summary

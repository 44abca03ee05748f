"""Bootstrap confidence intervals for VOC mAP over test images, single and paired.

A resample draws the test images with replacement (Efron's percentile bootstrap; the
image is the unit, since detections within an image are not independent).  Drawing
an image ``w`` times is the same as giving its detections and ground truth weight
``w``, so each resample's AP is a weighted cumulative sum over the ranked detections
of :class:`~pipeline.evaluation.voc.MatchTable` — the detections are matched once,
never per resample.  With all weights 1 the AP equals
:func:`~pipeline.evaluation.voc.evaluate_voc`'s exactly.

A *paired* interval compares two results on the same images (HR against LR, Soft-NMS
against NMS, one variant against another): both are scored on the same resamples and
the interval is that of the per-resample difference, which is much narrower than two
separate intervals would suggest when the two results are correlated.

Classes without ground truth in a resample are left out of its mean, as in the point
estimate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.evaluation.voc import MatchTable

#: Resamples per interval; 1,000 keeps the Monte-Carlo error of a 95 % percentile bound ~0.2 of its width.
DEFAULT_RESAMPLES = 1000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval (``level`` e.g. 0.95)."""

    value: float
    lo: float
    hi: float
    level: float = 0.95

    def as_dict(self) -> dict[str, float | None]:
        return {k: (None if not np.isfinite(v) else round(float(v), 6))
                for k, v in (("value", self.value), ("lo", self.lo), ("hi", self.hi))}


def image_weights(n_images: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_images) counts: how often each image is drawn in each resample."""
    if n_images < 1:
        raise ValueError("bootstrap needs at least one test image")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(resamples, n_images))
    offsets = (np.arange(resamples) * n_images)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n_images).reshape(resamples, n_images)


def weighted_map(table: MatchTable, weights: np.ndarray, chunk: int = 256) -> np.ndarray:
    """mAP (VOC all-point, IoU and area range of ``table``) for each row of ``weights`` (R, n_images)."""
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if weights.shape[1] != len(table.image_ids):
        raise ValueError(f"weights cover {weights.shape[1]} images, the table {len(table.image_ids)}")
    nc = len(table.classes)
    ap = np.full((weights.shape[0], nc), np.nan)
    npos = weights @ table.npos.astype(np.float64)  # (R, nc)
    for c in range(nc):
        tp_flag = table.det_tp[c].astype(np.float64)
        for s in range(0, weights.shape[0], chunk):
            w = weights[s : s + chunk][:, table.det_image[c]]  # (r, k)
            ap[s : s + chunk, c] = _all_point_ap(w * tp_flag, w * (1.0 - tp_flag), npos[s : s + chunk, c])
    with np.errstate(invalid="ignore"):
        counted = np.isfinite(ap)
        return np.where(counted.any(1), np.nansum(ap, 1) / np.maximum(counted.sum(1), 1), np.nan)


def _all_point_ap(tp_w: np.ndarray, fp_w: np.ndarray, npos: np.ndarray) -> np.ndarray:
    """Row-wise VOC all-point AP from weighted TP/FP increments in rank order; NaN where npos == 0."""
    tp = np.cumsum(tp_w, axis=1)
    fp = np.cumsum(fp_w, axis=1)
    safe = np.where(npos > 0, npos, 1.0)[:, None]
    rec = tp / safe
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    r = rec.shape[0]
    mrec = np.concatenate([np.zeros((r, 1)), rec, np.ones((r, 1))], axis=1)
    mpre = np.concatenate([np.zeros((r, 1)), prec, np.zeros((r, 1))], axis=1)
    mpre = np.maximum.accumulate(mpre[:, ::-1], axis=1)[:, ::-1]
    ap = np.sum((mrec[:, 1:] - mrec[:, :-1]) * mpre[:, 1:], axis=1)
    return np.where(npos > 0, ap, np.nan)


def _percentile(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(finite, [a, 1.0 - a])
    return float(lo), float(hi)


def map_interval(table: MatchTable, weights: np.ndarray, level: float = 0.95) -> Interval:
    """mAP of ``table`` with its percentile interval over the resamples in ``weights``."""
    point = float(weighted_map(table, np.ones((1, len(table.image_ids))))[0])
    return Interval(point, *_percentile(weighted_map(table, weights), level), level)


def paired_interval(a: MatchTable, b: MatchTable, weights: np.ndarray, level: float = 0.95) -> Interval:
    """mAP(a) − mAP(b) on the same images and resamples, with its percentile interval."""
    if a.image_ids != b.image_ids:
        raise ValueError("a paired interval needs both results on the same images in the same order")
    ones = np.ones((1, len(a.image_ids)))
    point = float(weighted_map(a, ones)[0] - weighted_map(b, ones)[0])
    return Interval(point, *_percentile(weighted_map(a, weights) - weighted_map(b, weights), level), level)


def intervals(
    tables: Mapping[str, MatchTable],
    pairs: Mapping[str, tuple[str, str]],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[dict[str, Interval], dict[str, Interval]]:
    """Intervals of every table's mAP and of each named difference ``name -> (a, b)`` (a − b).

    All tables must cover the same images in the same order; every interval uses the same
    resamples, so they are mutually consistent.
    """
    if not tables:
        return {}, {}
    n = len(next(iter(tables.values())).image_ids)
    weights = image_weights(n, resamples, seed)
    single = {k: map_interval(t, weights, level) for k, t in tables.items()}
    missing = sorted({x for pair in pairs.values() for x in pair} - set(tables))
    if missing:
        raise KeyError(f"paired interval names unknown result(s): {', '.join(missing)}")
    paired = {k: paired_interval(tables[a], tables[b], weights, level) for k, (a, b) in pairs.items()}
    return single, paired


def images_digest(image_ids: list[str]) -> str:
    """A short digest of the test image list, in order (runs are only paired on the same list)."""
    return hashlib.sha256("\n".join(image_ids).encode()).hexdigest()[:16]


def samples_document(
    tables: Mapping[str, MatchTable], resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95,
    methods: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Per result key (e.g. ``hr.nms.map``) its point mAP, interval and per-resample mAPs, for later pairing.

    ``methods`` names the run's hard-NMS and Soft-NMS methods (``{"nms": ..., "soft": ...}``) for the
    within-run comparisons (:data:`COMPARISONS`), which the document lists under ``effects``.
    Written by the evaluation as ``bootstrap.json``; a study pairs runs through it (same images, same
    resample seed ⇒ the same resamples in every run).
    """
    if not tables:
        raise ValueError("no results to bootstrap")
    ids = next(iter(tables.values())).image_ids
    if any(t.image_ids != ids for t in tables.values()):
        raise ValueError("every result must cover the same test images in the same order")
    weights = image_weights(len(ids), resamples, seed)
    ones = np.ones((1, len(ids)))
    doc: dict[str, Any] = {"resamples": resamples, "seed": seed, "level": level, "n_images": len(ids),
                           "images": images_digest(ids), "methods": dict(methods or {}), "results": {}}
    for key, table in tables.items():
        samples = weighted_map(table, weights)
        point = float(weighted_map(table, ones)[0])
        lo, hi = _percentile(samples, level)
        doc["results"][key] = {**Interval(point, lo, hi, level).as_dict(),
                               "samples": [None if not np.isfinite(x) else round(float(x), 5) for x in samples]}
    doc["effects"] = within_run_effects(doc)
    return doc


def document_samples(doc: Mapping[str, Any], key: str) -> np.ndarray:
    """The per-resample values of ``key`` from a :func:`samples_document` (NaN where undefined)."""
    return np.array([np.nan if x is None else x for x in doc["results"][key]["samples"]], dtype=np.float64)


#: Within-run comparisons: label -> (a, b) result templates "<set>.<method>"; ``{nms}`` / ``{soft}`` are the
#: run's hard-NMS and Soft-NMS method names (``methods`` in :func:`samples_document`).
COMPARISONS: dict[str, tuple[str, str]] = {
    "SR − bicubic": ("sr.{nms}", "bicubic.{nms}"),
    "SRGAN − bicubic": ("srgan.{nms}", "bicubic.{nms}"),
    "SRGAN − SR": ("srgan.{nms}", "sr.{nms}"),
    "SR − LR": ("sr.{nms}", "lr.{nms}"),
    "HR − LR": ("hr.{nms}", "lr.{nms}"),
    "Soft-NMS − NMS (HR)": ("hr.{soft}", "hr.{nms}"),
    "Soft-NMS − NMS (LR)": ("lr.{soft}", "lr.{nms}"),
}
#: The bootstrapped metrics: VOC mAP@0.5 on all objects and on small ones.
BOOTSTRAP_METRICS = ("map", "map_small")


def comparison_keys(methods: Mapping[str, str], metric: str) -> dict[str, tuple[str, str]]:
    """Each comparison whose methods exist, as (result key a, result key b) for ``metric``."""
    out = {}
    for label, (a, b) in COMPARISONS.items():
        try:
            out[label] = (f"{a.format(**methods)}.{metric}", f"{b.format(**methods)}.{metric}")
        except KeyError:  # a method kind this run does not have
            continue
    return out


def document_difference(doc: Mapping[str, Any], a: str, b: str) -> tuple[float, np.ndarray] | None:
    """Point difference a − b and its per-resample differences, or None when either is absent/undefined."""
    results = doc["results"]
    if a not in results or b not in results or results[a]["value"] is None or results[b]["value"] is None:
        return None
    return results[a]["value"] - results[b]["value"], document_samples(doc, a) - document_samples(doc, b)


def within_run_effects(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The paired comparisons of one run (:data:`COMPARISONS`) with intervals over its test images."""
    rows = []
    for metric in BOOTSTRAP_METRICS:
        for label, (a, b) in comparison_keys(doc.get("methods", {}), metric).items():
            diff = document_difference(doc, a, b)
            if diff is not None:
                lo, hi = _percentile(diff[1], doc["level"])
                rows.append({"effect": label, "metric": metric,
                             **Interval(diff[0], lo, hi, doc["level"]).as_dict()})
    return rows

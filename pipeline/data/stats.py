"""Dataset statistics: how small are the objects, per class and per split (METHODS.md §1).

Per class: instance count, mean relative area (box area / image area), and the
share of COCO small / medium / large instances (:func:`pipeline.data.boxes.size_bucket`,
absolute pixel areas of the set's own images); the same overall and per split;
and a histogram of sqrt(area) in pixels.  Classes are ranked ascending by
mean relative area, as in the thesis' VOC table (bottle 0.056 smallest ...
cat 0.421 largest).

Which area: the buckets and the histogram follow the dataset's own rule, as its
official evaluation does.  On a COCO source that is the annotation's ``area`` (the
mask area; COCOeval buckets by it), on VOC and every source without one the box
area (:meth:`ImageRecord.object_areas`); ``size_measure`` in the output says which
(:func:`pipeline.data.schema.size_measure`).  The mean relative area stays the box
area's, so class rankings compare across datasets.

Which objects count: VOC ``difficult`` objects are *excluded* from the main
numbers by default, as in the VOC evaluation (they are ignored there) and the
usual VOC statistics tables, and are counted separately per class
(``include_difficult: true`` folds them in).  COCO ``iscrowd`` regions are not
object instances and are always excluded, counted separately as ``crowd``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.config import require
from pipeline.data.boxes import MEDIUM_MAX_AREA, SMALL_MAX_AREA, areas, size_bucket
from pipeline.data.schema import SPLITS, ImageRecord, size_measure

BUCKETS = ("small", "medium", "large")
AREA_LABEL = {"coco_area": "annotation area", "box_area": "box area", "mixed": "area"}


@dataclass(frozen=True)
class StatsConfig:
    """``stats`` section of params.yaml.

    Attributes:
        include_difficult: count VOC difficult objects in the main numbers.
        bin_px: bin width of the sqrt(box area) histogram, in pixels.
    """

    include_difficult: bool = False
    bin_px: float = 8.0

    def validate(self, prefix: str) -> None:
        require(self.bin_px > 0, f"{prefix}.bin_px", f"must be > 0, got {self.bin_px}")


@dataclass(frozen=True)
class Instances:
    """Flat per-instance arrays of a set (all objects, before any filtering).

    Attributes: labels (N,) int; area (N,) bucket area in px^2 (the annotation's
    area where known, else the box area); rel_area (N,) box area / image area;
    split (N,) str; difficult, crowd (N,) bool; n_images per split.
    """

    labels: np.ndarray
    area: np.ndarray
    rel_area: np.ndarray
    split: np.ndarray
    difficult: np.ndarray
    crowd: np.ndarray
    n_images: dict[str, int]

    @classmethod
    def from_records(cls, records: Sequence[ImageRecord]) -> Instances:
        parts = [
            (r.labels, r.object_areas(), areas(r.boxes).astype(np.float64) / (float(r.width) * float(r.height)),
             r.split, r.difficult, r.iscrowd)
            for r in records
        ]
        n_images = {s: sum(1 for r in records if r.split == s) for s in SPLITS}
        if not any(len(p[0]) for p in parts):
            empty = np.zeros(0)
            return cls(empty.astype(np.int64), empty, empty, empty.astype(str), empty.astype(bool), empty.astype(bool), n_images)
        return cls(
            labels=np.concatenate([p[0] for p in parts]).astype(np.int64),
            area=np.concatenate([p[1] for p in parts]),
            rel_area=np.concatenate([p[2] for p in parts]),
            split=np.concatenate([np.full(len(p[0]), p[3]) for p in parts]),
            difficult=np.concatenate([p[4] for p in parts]).astype(bool),
            crowd=np.concatenate([p[5] for p in parts]).astype(bool),
            n_images=n_images,
        )


def _summary(area: np.ndarray, rel_area: np.ndarray) -> dict[str, float]:
    """Instance count, mean relative area and bucket shares of one group (empty -> count only)."""
    out: dict[str, float] = {"instances": int(area.size)}
    if area.size:
        counts = np.bincount(size_bucket(area), minlength=3)
        out["mean_rel_area"] = float(rel_area.mean())
        out.update({f"{b}_share": float(c / area.size) for b, c in zip(BUCKETS, counts, strict=True)})
        out.update({b: int(c) for b, c in zip(BUCKETS, counts, strict=True)})
    return out


@dataclass(frozen=True)
class SetStats:
    """Everything the stats stage reports.

    Attributes:
        overall, splits: summaries ({instances, mean_rel_area, <bucket>_share,
            <bucket> (count), difficult, crowd, images}).
        per_class: class -> summary (+ difficult, per-split instances), ordered
            ascending by mean relative area (classes without instances last).
        hist_edges (K+1,), hist_counts (K,): histogram of sqrt(area) px.
        size_measure: ``coco_area``, ``box_area`` or ``mixed``: the area the buckets use.
    """

    overall: dict[str, float]
    splits: dict[str, dict[str, float]]
    per_class: dict[str, dict[str, float]]
    hist_edges: np.ndarray
    hist_counts: np.ndarray
    size_measure: str = "box_area"


def compute_stats(records: Sequence[ImageRecord], classes: Sequence[str], cfg: StatsConfig = StatsConfig()) -> SetStats:
    """Statistics of a set's records (see module docstring for which objects count)."""
    inst = Instances.from_records(records)
    main = ~inst.crowd & (cfg.include_difficult | ~inst.difficult)
    side = {"difficult": inst.difficult & ~inst.crowd, "crowd": inst.crowd}

    def group(mask: np.ndarray) -> dict[str, float]:
        m = mask & main
        out = _summary(inst.area[m], inst.rel_area[m])
        out.update({k: int((mask & v).sum()) for k, v in side.items()})
        return out

    everything = np.ones(inst.labels.shape, bool)
    overall = group(everything) | {"images": sum(inst.n_images.values())}
    splits = {s: group(inst.split == s) | {"images": inst.n_images[s]} for s in SPLITS if inst.n_images[s]}
    per_class = {}
    for cid, name in enumerate(classes):
        is_c = inst.labels == cid
        row = group(is_c)
        row.update({f"{s}_instances": int((is_c & main & (inst.split == s)).sum()) for s in SPLITS})
        per_class[name] = row
    order = sorted(per_class, key=lambda c: (per_class[c]["instances"] == 0, per_class[c].get("mean_rel_area", 0.0)))
    per_class = {c: per_class[c] | {"rank": i + 1} for i, c in enumerate(order)}
    edges, counts = sqrt_area_histogram(inst.area[main], cfg.bin_px)
    return SetStats(overall, splits, per_class, edges, counts, size_measure(records))


def sqrt_area_histogram(area: np.ndarray, bin_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Counts of sqrt(area) in bins ``[k*bin_px, (k+1)*bin_px)`` covering 0..max (and past 96 px)."""
    side = np.sqrt(np.asarray(area, dtype=np.float64))
    top = max(float(side.max()) if side.size else 0.0, math.sqrt(MEDIUM_MAX_AREA))
    n_bins = int(math.floor(top / bin_px)) + 1
    edges = np.arange(n_bins + 1, dtype=np.float64) * bin_px
    idx = np.minimum((side // bin_px).astype(np.int64), n_bins - 1)
    return edges, np.bincount(idx, minlength=n_bins)


def _round(d: dict[str, float], digits: int = 4) -> dict[str, float]:
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in d.items()}


def to_metrics(stats: SetStats, cfg: StatsConfig = StatsConfig()) -> dict:
    """Compact nested dict of numbers for ``dvc metrics show`` (per-class rows without zero classes)."""
    return {
        "include_difficult": int(cfg.include_difficult),
        "size_measure": stats.size_measure,
        "overall": _round(stats.overall),
        "splits": {s: _round(v) for s, v in stats.splits.items()},
        "per_class": {
            c: _round({k: v for k, v in row.items() if k in ("instances", "mean_rel_area", "small_share", "medium_share", "large_share", "difficult", "rank")})
            for c, row in stats.per_class.items()
            if row["instances"]
        },
    }


PER_CLASS_COLUMNS = (
    "rank", "class", "instances", "train_instances", "test_instances", "mean_rel_area",
    "small_share", "medium_share", "large_share", "difficult", "crowd",
)


def per_class_rows(stats: SetStats) -> list[dict[str, object]]:
    """Per-class table rows, ascending by mean relative area (empty cells for classes without instances)."""
    rows = []
    for name, row in stats.per_class.items():
        r = _round(row)
        rows.append({col: name if col == "class" else r.get(col, "") for col in PER_CLASS_COLUMNS})
    return rows


def histogram_rows(stats: SetStats) -> list[dict[str, object]]:
    """Rows ``sqrt_area`` (bin lower edge, px) and ``count`` for ``dvc plots``."""
    return [{"sqrt_area": float(e), "count": int(c)} for e, c in zip(stats.hist_edges[:-1], stats.hist_counts, strict=True)]


def write_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, object]], columns: Sequence[str]) -> None:
    """Write ``rows`` as CSV with a header, atomically."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def size_histogram_png(path: str | os.PathLike[str], stats: SetStats, title: str = "") -> None:
    """The sqrt(area) histogram with the COCO 32 / 96 px thresholds marked."""
    from pipeline.plots import histogram_png

    n = int(stats.hist_counts.sum())
    histogram_png(
        path,
        stats.hist_edges,
        stats.hist_counts,
        title=title or f"Object size ({n} instances; small {stats.overall.get('small_share', 0):.1%})",
        xlabel=f"sqrt({AREA_LABEL[stats.size_measure]}) [px]",
        ylabel="instances",
        vlines={"small < 32 px": math.sqrt(SMALL_MAX_AREA), "medium < 96 px": math.sqrt(MEDIUM_MAX_AREA)},
    )

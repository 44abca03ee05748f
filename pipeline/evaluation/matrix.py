"""The evaluation matrix: one model over several image sets × post-processing methods.

Scoring frame: every set is scored against the *reference* (HR) ground truth.
Detections on an LR/SR/bicubic set are mapped into the HR frame (x by HR width /
set width, y by HR height / set height, per image) before scoring, so the COCO
small/medium/large buckets are the HR ones for every set (METHODS §6: "HR
original unless stated") and numbers across sets are directly comparable.

Outputs (all built in a temp directory and renamed onto ``out_dir`` at the end, so
an error leaves the previous outputs or nothing, never a partial metrics file)::

    out_dir/bootstrap.json               per set × method: mAP (all, small) with its interval and per-resample values
                                         (pipeline.evaluation.bootstrap), and the within-run comparisons
    out_dir/metrics.json                 flat keys "<set>.<method>.<metric>" (see METRIC_KEYS); null = undefined
    out_dir/per_class_ap.csv / .json     per set × method × class: VOC AP (all-point, 11-point), AP small, npos
    out_dir/pr/<set>_<method>.csv        recall + one precision column per class (101-point envelope)
    out_dir/pr_plots/<set>_<method>.csv  long form for ``dvc plots``: recall,precision,class (mean + pictured)
    out_dir/pr_sets.csv                  long form: recall,precision,set,method (mean curve of each)
    out_dir/detections/<set>_<method>.json   COCO results format, HR frame
    out_dir/gt_coco.json                 the HR ground truth as COCO json (ids used by the detections files)
    out_dir/figures/pr_<set>_<method>.png    PR curves, highlighted classes in colour
    out_dir/figures/detections_<i>_<image_id>.png   the same test image across the sets, side by side
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from torch import nn
from tqdm import tqdm

from pipeline.atomic import atomic_dir, write_json
from pipeline.data.boxes import SMALL_MAX_AREA, scale_boxes
from pipeline.data.images import read_image
from pipeline.data.schema import ImageRecord, images_dir
from pipeline.evaluation.bootstrap import samples_document
from pipeline.evaluation.classes import resolve_pr_classes
from pipeline.evaluation.coco import Backend, coco_evaluate, records_to_coco
from pipeline.evaluation.config import BootstrapConfig
from pipeline.evaluation.infer import load_split, predict_set_multi
from pipeline.evaluation.plots import RECALL_POINTS, draw_panel, plot_pr, write_pr_csv, write_side_by_side
from pipeline.evaluation.pr_tables import class_rows, mean_precision
from pipeline.evaluation.results import (
    detections_to_results,
    read_results,
    results_to_detections,
    write_results,
)
from pipeline.evaluation.summary import headline_methods
from pipeline.evaluation.tables import write_csv
from pipeline.evaluation.voc import ImageDetections, MatchTable, VocResult, match_detections, voc_result
from pipeline.paths import inside
from pipeline.postprocess import Detections, PostprocessConfig

BOOTSTRAP_FILE = "bootstrap.json"

#: Per set × method: VOC mAP@0.5 (all-point, 11-point, per HR size bucket) and the COCO stats.
METRIC_KEYS = (
    "map", "map_07", "map_small", "map_medium", "map_large",
    "coco_ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
    "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large",
)  # fmt: skip


def _defined(x: float) -> float | None:
    """A metric value, or None where it is undefined (no ground truth in a bucket: NaN from VOC,
    -1 from pycocotools); written as JSON null, never as a -1 that reads like a score."""
    return float(x) if math.isfinite(x) and x >= 0 else None


def to_reference_frame(
    detections: Mapping[str, object],
    set_records: Sequence[ImageRecord],
    ref_records: Mapping[str, ImageRecord],
) -> dict[str, ImageDetections]:
    """Scale each image's boxes from its set's pixel frame into the reference (HR) frame."""
    out = {}
    for r in set_records:
        if r.image_id not in detections:
            continue
        d = ImageDetections.of(detections[r.image_id])
        ref = ref_records[r.image_id]
        boxes = scale_boxes(d.boxes, ref.width / r.width, ref.height / r.height)
        out[r.image_id] = ImageDetections(boxes, d.scores, d.labels)
    return out


def score_detections(
    detections: Mapping[str, ImageDetections],
    ref_records: Sequence[ImageRecord],
    classes: Sequence[str],
    gt_coco: dict,
    results_path: Path,
    coco_backend: Backend,
) -> tuple[dict[str, float | None], dict[str, VocResult], dict[str, MatchTable]]:
    """Write the detections file, read it back (validated) and compute VOC + COCO metrics from it.

    Returns the flat metrics, and the VOC results and match tables per area range (``all``, ``small``,
    ``medium``, ``large``).
    """
    ids = {im["image_key"]: im["id"] for im in gt_coco["images"]}
    write_results(results_path, detections_to_results(detections, ids))
    results = read_results(results_path, gt_coco)
    dets = results_to_detections(results, ids)
    tables = {b: match_detections(ref_records, dets, classes, area_range=b) for b in ("all", "small", "medium", "large")}
    voc = {b: voc_result(t) for b, t in tables.items()}
    metrics = {"map": voc["all"].map, "map_07": voc["all"].map_07}
    metrics.update({f"map_{b}": voc[b].map for b in ("small", "medium", "large")})
    metrics.update(coco_evaluate(gt_coco, results, coco_backend))
    return {k: _defined(metrics[k]) for k in METRIC_KEYS}, voc, tables


def evaluate_matrix(
    model: nn.Module,
    sets: Mapping[str, str | os.PathLike[str]],
    reference_set: str | os.PathLike[str],
    methods: Mapping[str, PostprocessConfig],
    out_dir: str | os.PathLike[str],
    *,
    split: str = "test",
    batch_size: int = 8,
    device: str = "auto",
    num_workers: int = 0,
    coco_backend: Backend = "faster",
    pr_classes: str | Sequence[str] = "auto",
    pictures: int = 4,
    picture_method: str | None = None,
    picture_score: float = 0.3,
    progress: bool = True,
    predictions: Mapping[str, Mapping[str, Mapping[str, Detections]]] | None = None,
    bootstrap: BootstrapConfig | None = None,
) -> dict[str, float | None]:
    """Evaluate ``model`` on every set × method and write all outputs (see module docstring).

    Args:
        sets: name -> set directory (e.g. ``{"lr": ..., "sr": ..., "hr": ...}``); names
            form the metric keys and the picture column order.
        reference_set: the HR set whose ground truth and pixel frame every set is scored in.
        methods: method name -> post-processing config.
        pr_classes: classes pictured in the PR plots: ``"auto"`` (the smallest by mean relative
            area in the reference ground truth) or names, each checked against the classes.
        predictions: optional precomputed ``{set: {method: {image_id: Detections}}}`` (set
            pixel frame, as :func:`predict_set_multi` returns) — e.g. cached per set by the
            Prefect ``evaluate`` flow; sets missing from it are predicted here.
        bootstrap: intervals over test images for every set × method mAP (all objects, small)
            and the within-run comparisons, written to ``bootstrap.json``; None or 0 resamples: none
            (the file says ``"resamples": 0``).
    Returns:
        The flat metrics dict written to ``metrics.json`` (None where a metric is undefined).
    """
    if not sets:
        raise ValueError("evaluate_matrix: no sets given")
    if not methods:
        raise ValueError("evaluate_matrix: no post-processing methods given")
    for name, path in sets.items():
        if "." in name:
            raise ValueError(f"set name {name!r} may not contain '.' (metric keys are dotted)")
        if not Path(path).is_dir():
            raise FileNotFoundError(f"evaluation set {name!r} not found: {path}")
    ref_records, classes = load_split(reference_set, split)
    ref_by_id = {r.image_id: r for r in ref_records}
    gt_coco = records_to_coco(ref_records, classes)
    picked = resolve_pr_classes(pr_classes, gt_coco)
    set_records: dict[str, list[ImageRecord]] = {}
    for name, path in sets.items():
        recs, set_classes = load_split(path, split)
        if list(set_classes) != list(classes):
            raise ValueError(f"set {name!r} ({path}) has classes {set_classes}, the reference has {classes}")
        ids = {r.image_id for r in recs}
        if ids != set(ref_by_id):
            missing = sorted(set(ref_by_id) - ids)[:3] or sorted(ids - set(ref_by_id))[:3]
            raise ValueError(
                f"set {name!r} ({path}): its {split!r} images differ from the reference set's, e.g. {missing}"
            )
        set_records[name] = recs

    metrics: dict[str, float | None] = {}
    per_class: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    csv_rows: list[list[object]] = []
    drawn: dict[str, dict[str, ImageDetections]] = {}
    matched: dict[str, MatchTable] = {}
    set_rows: list[list[object]] = []
    picture_method = picture_method or next(iter(methods))
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "gt_coco.json", gt_coco)
        for set_name, path in sets.items():
            if predictions is not None and set_name in predictions:
                raw = predictions[set_name]
            else:
                raw = predict_set_multi(model, path, methods, split, batch_size, device, num_workers, progress)
            for method in tqdm(methods, desc=f"score {set_name}", disable=not progress):
                dets = to_reference_frame(raw[method], set_records[set_name], ref_by_id)
                m, vocs, tables = score_detections(
                    dets,
                    ref_records,
                    classes,
                    gt_coco,
                    tmp / "detections" / f"{set_name}_{method}.json",
                    coco_backend,
                )
                voc, small = vocs["all"], vocs["small"]
                matched[f"{set_name}.{method}.map"] = tables["all"]
                matched[f"{set_name}.{method}.map_small"] = tables["small"]
                for k, v in m.items():
                    metrics[f"{set_name}.{method}.{k}"] = v
                table = per_class.setdefault(set_name, {}).setdefault(method, {})
                for c, name in enumerate(classes):
                    row = {
                        "ap": _defined(voc.ap[c]),
                        "ap_07": _defined(voc.ap_07[c]),
                        "ap_small": _defined(small.ap[c]),
                        "npos": voc.curves[c].npos,
                    }
                    table[name] = row
                    cells = ["" if row[k] is None else f"{row[k]:.6f}" for k in ("ap", "ap_07", "ap_small")]
                    csv_rows.append([set_name, method, name, *cells, row["npos"]])
                write_pr_csv(tmp / "pr" / f"{set_name}_{method}.csv", classes, voc.curves)
                write_csv(tmp / "pr_plots" / f"{set_name}_{method}.csv", ("recall", "precision", "class"),
                          class_rows(classes, voc.curves, picked))
                mean = mean_precision(voc.curves)
                set_rows += [[f"{r:.2f}", f"{mean[i]:.6f}", set_name, method] for i, r in enumerate(RECALL_POINTS)]
                plot_pr(
                    tmp / "figures" / f"pr_{set_name}_{method}.png",
                    f"{set_name} / {method}",
                    classes,
                    voc.curves,
                    picked,
                )
                if method == picture_method:
                    drawn[set_name] = dets
        _write_pictures(
            tmp / "figures", sets, set_records, ref_records, classes, drawn, pictures, picture_score
        )
        write_csv(tmp / "pr_sets.csv", ("recall", "precision", "set", "method"), set_rows)
        write_json(tmp / "per_class_ap.json", per_class)
        if bootstrap is not None and bootstrap.resamples > 0:
            write_json(tmp / BOOTSTRAP_FILE, samples_document(matched, bootstrap.resamples, bootstrap.seed,
                                                              bootstrap.level, headline_methods(methods)))
        else:  # a declared output: present, saying there are no intervals
            write_json(tmp / BOOTSTRAP_FILE, {"resamples": 0, "results": {}, "effects": []})
        write_csv(tmp / "per_class_ap.csv", ("set", "method", "class", "ap", "ap_07", "ap_small", "npos"), csv_rows)
        write_json(tmp / "metrics.json", metrics)  # last: present only if everything else succeeded
    return metrics


def _write_pictures(
    fig_dir: Path,
    sets: Mapping[str, str | os.PathLike[str]],
    set_records: Mapping[str, Sequence[ImageRecord]],
    ref_records: Sequence[ImageRecord],
    classes: Sequence[str],
    drawn: Mapping[str, Mapping[str, ImageDetections]],
    count: int,
    min_score: float,
) -> None:
    """The ``count`` test images with most small HR objects (ties: image id), one panel per set."""
    if count <= 0:
        return
    ranked = sorted(ref_records, key=lambda r: (-int((r.object_areas() < SMALL_MAX_AREA).sum()), r.image_id))
    for i, ref in enumerate(ranked[:count]):
        panels = []
        for name, path in sets.items():
            rec = next(r for r in set_records[name] if r.image_id == ref.image_id)
            image = read_image(inside(images_dir(path), rec.file_name))
            det = drawn.get(name, {}).get(ref.image_id) or ImageDetections(
                np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, np.int64)
            )
            panels.append(
                draw_panel(
                    image,
                    ref.boxes,
                    det,
                    classes,
                    (ref.width, ref.height),
                    min(400, max(ref.height, 200)),
                    f"{name} {image.shape[1]}x{image.shape[0]}",
                    min_score,
                )
            )
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in ref.image_id)
        write_side_by_side(fig_dir / f"detections_{i}_{safe}.png", panels)

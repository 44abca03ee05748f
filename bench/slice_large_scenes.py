"""Sliced versus full-image detection on large scenes: AP_small and recall (issue 12 item 3).

    python bench/slice_large_scenes.py --checkpoint model.pt --set data/sets/large [--out slice_large.json]

The set is an embedded ``scene: large`` set (``data.embedded.scene: large``) ingested
like any other; ``--checkpoint`` a detector trained at the slice scale (e.g. on the
default embedded set, whose 300-400 px images show objects at about native size in a
300 px input).  Every variant uses the evaluation's own inference
(:func:`pipeline.evaluation.infer.predict_set_multi`) with hard NMS per input, top 1000
detections per image (the scenes hold up to 400 objects), and is scored against the
set's ground truth: VOC AP@0.5 over all objects and over small ones (< 32^2 px),
recall@0.5 over all detections, and COCO AP_small (pycocotools' maxDets=100 caps it
on images with more than 100 objects; VOC AP has no cap).  Prints a markdown table and
writes the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline.atomic import write_json  # noqa: E402
from pipeline.detector.checkpoint import load_detector  # noqa: E402
from pipeline.evaluation.coco import coco_evaluate, records_to_coco  # noqa: E402
from pipeline.evaluation.infer import load_split, predict_set_multi  # noqa: E402
from pipeline.evaluation.results import detections_to_results  # noqa: E402
from pipeline.evaluation.voc import evaluate_voc  # noqa: E402
from pipeline.postprocess import PostprocessConfig  # noqa: E402
from pipeline.slicing import SliceConfig  # noqa: E402


def recall(result) -> float:  # noqa: ANN001
    """Share of ground-truth objects matched at IoU 0.5 by any detection (all classes pooled)."""
    hit = sum(float(c.recall[-1]) * c.npos for c in result.curves if c.npos and c.recall.size)
    return hit / max(1, sum(c.npos for c in result.curves))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--set", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--slice", type=int, default=300)
    p.add_argument("--overlap", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default="slice_large.json")
    a = p.parse_args()
    model, extra = load_detector(a.checkpoint)
    records, classes = load_split(a.set, a.split)
    gt = records_to_coco(records, classes)
    ids = {im["image_key"]: im["id"] for im in gt["images"]}
    sliced = SliceConfig(a.slice, a.overlap, "nms")
    greedy = SliceConfig(a.slice, a.overlap, "greedy")
    # (slicing, score floor before NMS and the tile merge): 0.01 is the evaluation's, 0.3 predict's default
    variants = {
        "full image": (None, 0.01),
        f"sliced {a.slice} px, greedy merge": (greedy, 0.01),
        f"sliced {a.slice} px, nms merge": (sliced, 0.01),
        f"sliced {a.slice} px + full image, nms merge": (dataclasses.replace(sliced, full_image=True), 0.01),
        f"sliced {a.slice} px, greedy merge, score >= 0.3": (greedy, 0.3),
        f"sliced {a.slice} px, nms merge, score >= 0.3": (sliced, 0.3),
    }
    rows = []
    for name, (sl, floor) in variants.items():
        t = time.perf_counter()
        post = {"nms": PostprocessConfig(top_k=1000).with_score_floor(floor)}
        dets = predict_set_multi(model, a.set, post, a.split, a.batch_size, "cpu", progress=False, slice_cfg=sl)["nms"]
        secs = time.perf_counter() - t
        voc_all = evaluate_voc(records, dets, classes)
        voc_small = evaluate_voc(records, dets, classes, area_range="small")
        coco = coco_evaluate(gt, detections_to_results(dets, ids), "pycocotools")
        rows.append({"variant": name, "score_floor": floor, "voc_ap50": voc_all.map, "voc_ap50_small": voc_small.map,
                     "recall50": recall(voc_all), "recall50_small": recall(voc_small),
                     "coco_ap_small_maxdets100": coco["ap_small"], "seconds": round(secs, 1),
                     "detections": int(sum(len(d) for d in dets.values()))})
        print(rows[-1], flush=True)
    n_small = sum(int(np.sum(r.object_areas() < 32 ** 2)) for r in records)
    doc = {"checkpoint": a.checkpoint, "checkpoint_extra": {k: v for k, v in extra.items() if k != "classes"},
           "set": a.set, "images": len(records), "objects": sum(len(r) for r in records), "small_objects": n_small,
           "threads": torch.get_num_threads(), "rows": rows}
    write_json(a.out, doc)
    print(f"\n{len(records)} images, {doc['objects']} objects ({n_small} small)\n")
    print("| variant | VOC AP@0.5 | VOC AP@0.5 small | recall@0.5 | recall@0.5 small | COCO AP_small (maxDets 100) | s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['voc_ap50']:.3f} | {r['voc_ap50_small']:.3f} | {r['recall50']:.3f} | "
              f"{r['recall50_small']:.3f} | {r['coco_ap_small_maxdets100']:.3f} | {r['seconds']} |")


if __name__ == "__main__":
    main()

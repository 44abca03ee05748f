"""Evaluation precision: ground truth reaches the COCO JSON in float64, COCO sources bucket
objects by their own (mask) area, and both COCO backends give the same numbers.

Hostile inputs: an IoU exactly at a COCO threshold with decimal coordinates (float32 ground
truth lost that match), genuine val2017 objects whose mask and box areas fall in different
size buckets, and COCO annotations with a bad ``area``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from dataclasses import replace

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pipeline.data.images import write_image
from pipeline.data.ingest import IngestConfig, IngestError, ingest
from pipeline.data.schema import ImageRecord, read_records
from pipeline.data.sources import DataConfig, fetch
from pipeline.evaluation.coco import STAT_NAMES, coco_evaluate, records_to_coco
from pipeline.evaluation.matrix import score_detections
from pipeline.evaluation.voc import ImageDetections, evaluate_voc
from tests.evaluation.helpers import grid_fixture
from tests.evaluation.test_coco import jittered_results

BACKENDS = ("faster", "pycocotools")
# faster-coco-eval sums precisions in another order: its means may differ from pycocotools' in the last bit.
SUM_ULP = {"faster": 1e-12, "pycocotools": 0.0}
# (threshold, GT xyxy with decimals, detection xyxy, the stat at that threshold): in float64 the IoU is
# exactly the threshold (a match); with the GT rounded to float32 it is 0.49999997 / 0.74999993 (no match).
AT_THRESHOLD = [
    (0.5, [10.1, 10.0, 20.3, 30.0], [12.0, 10.0, 26.0, 31.0], "ap50"),
    (0.75, [10.1, 10.0, 20.2, 30.0], [7.0, 10.0, 20.0, 30.0], "ap75"),
]


def _pycocotools(gt: dict, results: list[dict]) -> dict[str, float]:
    """Plain pycocotools on the given dicts (its own copies)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(STAT_NAMES, ev.stats.tolist(), strict=True))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("thr", "gt_box", "det_box", "stat"), AT_THRESHOLD)
def test_iou_exactly_at_threshold_matches_as_in_pycocotools(make_set, tmp_path, thr, gt_box, det_box, stat,
                                                            backend):
    one = np.zeros(1, bool)
    record = ImageRecord("im", "im.jpg", "test", 64, 48, boxes=np.array([gt_box]), labels=np.zeros(1, np.int64),
                         difficult=one, iscrowd=one)
    records, classes = read_records(make_set([record], ["obj"]), "test")  # through the real Parquet table
    gt = records_to_coco(records, classes)
    det = {"im": ImageDetections(np.array([det_box], np.float32), np.array([0.9]), np.zeros(1, np.int64))}
    metrics = score_detections(det, records, classes, gt, tmp_path / "dets.json", backend)[0]

    x0, y0, x1, y1 = gt_box  # pycocotools fed the same float64 boxes directly
    direct_gt = {"images": [{"id": 1, "width": 64, "height": 48}], "categories": [{"id": 1, "name": "obj"}],
                 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                  "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}]}
    dx0, dy0, dx1, dy1 = det_box
    results = [{"image_id": 1, "category_id": 1, "bbox": [dx0, dy0, dx1 - dx0, dy1 - dy0], "score": 0.9}]
    direct = _pycocotools(direct_gt, results)
    assert direct[stat] == pytest.approx(1.0)  # matched (AP 1 up to summation rounding)
    undefined = {k for k, v in direct.items() if v < 0}  # pycocotools' -1: null in our files, never a score
    assert {k for k in STAT_NAMES if metrics[k] is None} == undefined
    assert {k: metrics[k] for k in STAT_NAMES if k not in undefined} == pytest.approx(
        {k: v for k, v in direct.items() if k not in undefined}, rel=0, abs=SUM_ULP[backend])
    assert evaluate_voc(records, det, classes, iou_threshold=thr).ap[0] == 1.0

    # The float32 ground truth of before loses exactly this match: the test can fail.
    old = [replace(records[0], boxes=records[0].boxes.astype(np.float32))]
    assert coco_evaluate(records_to_coco(old, classes), results, backend)[stat] == 0.0


@pytest.fixture(scope="module")
def genuine_coco(shared_data, tmp_path_factory):
    """The genuine COCO sample (train2017 + val2017) fetched as a local source and ingested for real."""
    root = tmp_path_factory.mktemp("coco")
    cfg = DataConfig(source="local", local_path=str(shared_data / "coco"), local_format="coco")
    fetch(cfg, 0, root / "raw", progress=False)
    report = ingest(root / "raw", root / "hr", IngestConfig(on_error="skip", verify_images="header"), progress=False)
    records, classes = read_records(root / "hr", "test")
    return records, classes, report, shared_data / "coco" / "annotations" / "instances_val2017.json"


def _bucket_counts(anns: list[dict], area_key) -> list[int]:  # noqa: ANN001
    """Non-crowd objects per COCOeval area range (all, small, medium, large), by pycocotools' own rule."""
    ranges = COCOeval(iouType="bbox").params.areaRng
    return [sum(1 for a in anns if not a["iscrowd"] and lo <= area_key(a) <= hi) for lo, hi in ranges]


def test_genuine_val2017_buckets_and_stats_equal_official_pycocotools(genuine_coco):
    records, classes, report, official_path = genuine_coco
    official = json.loads(official_path.read_text())
    assert report["skipped_objects"] == 0 and len(records) == len(official["images"])
    gt = records_to_coco(records, classes)
    assert len(gt["annotations"]) == len(official["annotations"]) == 815

    assert _bucket_counts(gt["annotations"], lambda a: a["area"]) == _bucket_counts(
        official["annotations"], lambda a: a["area"])
    box_area = _bucket_counts(official["annotations"], lambda a: a["bbox"][2] * a["bbox"][3])
    assert box_area != _bucket_counts(official["annotations"], lambda a: a["area"])  # box area would differ

    # The same detections, scored on our table's COCO dict and by pycocotools on the official file.
    results = jittered_results(official, seed=1)
    image_of = {int(im["image_key"]): im["id"] for im in gt["images"]}
    cat_of = {cid: i + 1 for i, cid in enumerate(sorted(c["id"] for c in official["categories"]))}
    ours_results = [{**r, "image_id": image_of[r["image_id"]], "category_id": cat_of[r["category_id"]]}
                    for r in results]
    with contextlib.redirect_stdout(io.StringIO()):
        ref = COCOeval(coco := COCO(str(official_path)), coco.loadRes(copy.deepcopy(results)), "bbox")
        ref.evaluate()
        ref.accumulate()
        ref.summarize()
    for backend in BACKENDS:
        ours = coco_evaluate(gt, ours_results, backend)
        np.testing.assert_allclose([ours[k] for k in STAT_NAMES], ref.stats, rtol=0, atol=SUM_ULP[backend],
                                   err_msg=backend)
    assert 0.05 < ours["ap_small"] < 0.95
    box_gt = records_to_coco([replace(r, area=None) for r in records], classes)  # buckets by box area, as before
    before = coco_evaluate(box_gt, ours_results)
    assert (before["ap_small"], before["ar_small"]) != pytest.approx((ref.stats[3], ref.stats[9]), abs=1e-6)


def test_backends_identical_on_the_same_workload_and_inputs_unchanged():
    records, detections = grid_fixture(seed=4, n_images=30)
    gt = records_to_coco(records, ["a", "b", "c"])
    ids = {im["image_key"]: im["id"] for im in gt["images"]}
    results = [{"image_id": ids[k], "category_id": int(lbl) + 1, "bbox": [float(b[0]), float(b[1]),
                float(b[2] - b[0]), float(b[3] - b[1])], "score": float(s)}
               for k, d in detections.items() for b, s, lbl in zip(d.boxes, d.scores, d.labels, strict=True)]
    gt_before, results_before = copy.deepcopy(gt), copy.deepcopy(results)
    stats = {b: coco_evaluate(gt, results, b) for b in BACKENDS}
    assert stats["faster"] == pytest.approx(stats["pycocotools"], rel=0, abs=SUM_ULP["faster"])
    assert 0.1 < stats["faster"]["coco_ap"] < 0.9
    assert gt == gt_before and results == results_before  # no deep copy, and still no mutation


def test_faster_is_the_default_backend():
    import yaml

    from pipeline.evaluation.config import EvaluateConfig
    from tests.conftest import REPO_ROOT

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert EvaluateConfig().coco_backend == params["evaluate"]["coco_backend"] == "faster"


def _coco_with_areas(root, areas):  # noqa: ANN001, ANN202
    """A tiny local COCO source: one train and one test image, the test image's objects with ``areas``."""
    rng = np.random.default_rng(0)
    cats = [{"id": 3, "name": "car"}]
    for image_id, split, n in ((1, "train2017", 1), (2, "val2017", len(areas))):
        write_image(root / split / "1.jpg", rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
        anns = [{"id": i + 1, "image_id": image_id, "category_id": 3, "bbox": [2 + i, 3, 10, 20], "iscrowd": 0}
                for i in range(n)]
        if split == "val2017":
            for ann, area in zip(anns, areas, strict=True):
                if area != "absent":
                    ann["area"] = area
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": [{"id": image_id, "file_name": "1.jpg", "width": 60, "height": 40}], "annotations": anns,
             "categories": cats}))
    fetch(DataConfig(source="local", local_path=str(root), local_format="coco"), 0, root / "raw", progress=False)
    return root / "raw"


def test_coco_area_carried_missing_falls_back_bad_is_a_listed_problem(tmp_path):
    raw = _coco_with_areas(tmp_path, [150.5, "absent", -4, "big", float("inf")])
    with pytest.raises(IngestError) as err:
        ingest(raw, tmp_path / "fail", IngestConfig(), progress=False)
    assert str(err.value).count("is not a positive number") == 3 and not (tmp_path / "fail").exists()
    report = ingest(raw, tmp_path / "hr", IngestConfig(on_error="skip"), progress=False)
    assert report["skipped_objects"] == 3
    (rec,), _ = read_records(tmp_path / "hr", "test")
    np.testing.assert_array_equal(rec.area, [150.5, np.nan])
    np.testing.assert_array_equal(rec.object_areas(), [150.5, 200.0])  # absent: the box area
    assert [a["area"] for a in records_to_coco([rec], ["car"])["annotations"]] == [150.5, 200.0]

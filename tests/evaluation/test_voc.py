"""VOC AP: hand-computed cases and a cross-check against pycocotools' per-class precision."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pipeline.evaluation.coco import records_to_coco
from pipeline.evaluation.results import detections_to_results
from pipeline.evaluation.voc import evaluate_voc, voc_ap
from tests.evaluation.helpers import dets, grid_fixture, rec

CLASSES = ["bottle", "cat", "dog"]


def hand_case():
    records = [
        rec("A", [[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0]),
        rec(
            "B", [[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 40, 40]], [0, 0, 1], difficult=[False, True, False]
        ),
    ]
    detections = {
        "A": dets([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8, 0.4], [0, 0, 0]),
        "B": dets(
            [[50, 50, 60, 60], [100, 100, 110, 110], [0, 0, 10, 10], [5, 5, 9, 9]],
            [0.7, 0.6, 0.5, 0.3],
            [0, 0, 0, 2],
        ),
    }
    return records, detections


def test_hand_computed_ap():
    records, detections = hand_case()
    res = evaluate_voc(records, detections, CLASSES)
    # bottle, ranked: TP, FP (duplicate), ignored (difficult), FP, TP, TP; npos = 3.
    # precision 1, 1/2, 1/3, 1/2, 3/5 at recall 1/3, 1/3, 1/3, 2/3, 1.
    assert res.ap[0] == pytest.approx(1 / 3 * 1 + 2 / 3 * 0.6)
    assert res.ap_07[0] == pytest.approx((4 * 1 + 7 * 0.6) / 11)
    curve = res.curves[0]
    np.testing.assert_allclose(curve.recall, [1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(curve.precision, [1, 1 / 2, 1 / 3, 1 / 2, 3 / 5])
    assert res.ap[1] == 0.0  # cat: ground truth, no detections
    assert math.isnan(res.ap[2])  # dog: no ground truth -> left out of the mean
    assert res.map == pytest.approx((res.ap[0] + 0.0) / 2)


def test_iscrowd_is_ignored_like_difficult():
    records = [rec("A", [[0, 0, 10, 10], [30, 30, 60, 60]], [0, 0], iscrowd=[False, True])]
    res = evaluate_voc(records, {"A": dets([[30, 30, 60, 60], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])}, ["a"])
    assert res.ap[0] == pytest.approx(1.0)


def test_size_buckets_use_area_in_frame():
    records = [rec("A", [[0, 0, 10, 10], [100, 100, 300, 300]], [0, 0])]
    d = {"A": dets([[100, 100, 300, 300], [400, 400, 405, 405], [0, 0, 10, 10]], [0.9, 0.8, 0.7], [0, 0, 0])}
    small = evaluate_voc(records, d, ["a"], area_range="small")
    large = evaluate_voc(records, d, ["a"], area_range="large")
    medium = evaluate_voc(records, d, ["a"], area_range="medium")
    # small: the large hit is ignored, the small FP counts: FP then TP -> AP 0.5.
    assert small.ap[0] == pytest.approx(0.5)
    # large: TP first; the two small detections are unmatched/ignored-GT and small -> ignored.
    assert large.ap[0] == pytest.approx(1.0)
    assert math.isnan(medium.ap[0])


def test_empty_detections_and_errors():
    records, _ = hand_case()
    res = evaluate_voc(records, {}, CLASSES)
    assert res.ap[0] == 0.0 and res.map == 0.0
    with pytest.raises(KeyError, match="not in the ground truth"):
        evaluate_voc(records, {"Z": dets([[0, 0, 1, 1]], [0.5], [0])}, CLASSES)
    with pytest.raises(ValueError, match="label outside"):
        evaluate_voc(records, {"A": dets([[0, 0, 1, 1]], [0.5], [7])}, CLASSES)


def test_voc_ap_modes():
    rec_, prec = np.array([0.5, 1.0]), np.array([1.0, 0.5])
    assert voc_ap(rec_, prec, "all") == pytest.approx(0.75)
    assert voc_ap(rec_, prec, "11") == pytest.approx((6 * 1 + 5 * 0.5) / 11)
    assert voc_ap(rec_, prec, "101") == pytest.approx((51 * 1 + 50 * 0.5) / 101)
    assert voc_ap(np.zeros(0), np.zeros(0), "all") == 0.0
    with pytest.raises(ValueError, match="unknown AP mode"):
        voc_ap(rec_, prec, "12")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("area", ["all", "small", "large"])
def test_matches_pycocotools_ap50_per_class(seed, area):
    """With well-separated ground truth, VOC and COCO matching coincide; sampled at
    COCO's 101 recall points our curve must give pycocotools' per-class AP50."""
    records, detections = grid_fixture(seed)
    res = evaluate_voc(records, detections, CLASSES, area_range=area)
    gt = records_to_coco(records, CLASSES)
    ids = {im["image_key"]: im["id"] for im in gt["images"]}
    results = detections_to_results(detections, ids)
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
    a = ["all", "small", "medium", "large"].index(area)
    for k in range(len(CLASSES)):
        p = ev.eval["precision"][0, :, k, a, 2]  # IoU 0.5, all recall thresholds, maxDets 100
        curve = res.curves[k]
        if curve.npos == 0:
            assert (p == -1).all()
            continue
        assert voc_ap(curve.recall, curve.precision, "101") == pytest.approx(float(p.mean()), abs=1e-9)

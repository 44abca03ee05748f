"""Bootstrap intervals: the weighted AP equals VOC AP on the explicitly resampled set."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.evaluation.bootstrap import image_weights, intervals, paired_interval, weighted_map
from pipeline.evaluation.voc import evaluate_voc, match_detections
from tests.evaluation.helpers import grid_fixture

CLASSES = ["a", "b", "c"]


def _resampled(records, detections, counts):
    """The resample written out: image i repeated counts[i] times under new ids."""
    out_r, out_d = [], {}
    for r, k in zip(records, counts, strict=True):
        for j in range(int(k)):
            copy = dataclasses.replace(r, image_id=f"{r.image_id}#{j}")
            out_r.append(copy)
            if r.image_id in detections:
                out_d[copy.image_id] = detections[r.image_id]
    return out_r, out_d


@pytest.mark.parametrize("area_range", ["all", "small"])
def test_weighted_map_equals_voc_on_the_resampled_set(area_range):
    records, detections = grid_fixture(3, n_images=15)
    table = match_detections(records, detections, CLASSES, area_range=area_range)
    ones = np.ones((1, len(records)))
    assert weighted_map(table, ones)[0] == pytest.approx(
        evaluate_voc(records, detections, CLASSES, area_range=area_range).map, abs=1e-12)
    weights = image_weights(len(records), 5, seed=1)
    got = weighted_map(table, weights)
    for row, value in zip(weights, got, strict=True):
        want = evaluate_voc(*_resampled(records, detections, row), CLASSES, area_range=area_range).map
        if np.isnan(want):
            assert np.isnan(value)
        else:
            assert value == pytest.approx(want, abs=1e-12)


def test_image_weights_draw_each_resample_with_replacement():
    w = image_weights(7, 200, seed=0)
    assert w.shape == (200, 7) and (w.sum(1) == 7).all()
    assert (w == 0).any() and (w > 1).any()
    assert np.array_equal(w, image_weights(7, 200, seed=0))


def test_interval_contains_the_estimate_and_a_paired_difference_of_a_result_with_itself_is_zero():
    records, detections = grid_fixture(5, n_images=20)
    table = match_detections(records, detections, CLASSES)
    single, paired = intervals({"x": table}, {"x-x": ("x", "x")}, resamples=300, seed=0)
    iv = single["x"]
    assert iv.lo <= iv.value <= iv.hi and iv.hi - iv.lo > 0.01
    assert paired["x-x"].lo == paired["x-x"].hi == paired["x-x"].value == 0.0


def test_a_better_result_has_a_paired_interval_above_zero():
    records, detections = grid_fixture(7, n_images=30)
    worse = {k: dataclasses.replace(d, scores=np.random.default_rng(0).random(d.scores.size))
             for k, d in detections.items()}
    # The better result: every true detection ranked above every false one.
    good = match_detections(records, detections, CLASSES)
    for c in range(len(CLASSES)):
        order = np.argsort(~good.det_tp[c], kind="stable")
        good.det_image[c], good.det_tp[c] = good.det_image[c][order], good.det_tp[c][order]
    weights = image_weights(len(records), 300, seed=0)
    diff = paired_interval(good, match_detections(records, worse, CLASSES), weights)
    assert diff.value > 0 and diff.lo > 0


def test_paired_interval_refuses_different_images():
    records, detections = grid_fixture(3, n_images=6)
    a = match_detections(records, detections, CLASSES)
    b = match_detections(records[::-1], detections, CLASSES)
    with pytest.raises(ValueError, match="same images"):
        paired_interval(a, b, image_weights(6, 10, 0))

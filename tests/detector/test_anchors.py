"""Default boxes per variant versus hand-computed values (SSD300 Caffe config)."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.config import ConfigError
from pipeline.detector.anchors import caffe_sizes
from pipeline.detector.model import ModelConfig, build_detector
from pipeline.detector.variants import parse_variant


def test_caffe_scale_rule_gives_published_ssd300_sizes():
    assert caffe_sizes(6, 300, 0.1, 0.2, 0.9) == [
        (30, 60), (60, 111), (111, 162), (162, 213), (213, 264), (264, 315)
    ]  # fmt: skip
    # shallow: 7 levels, step floor(70 / 5) = 14 percent
    assert caffe_sizes(7, 300, 0.1, 0.2, 0.9) == [
        (30, 60), (60, 102), (102, 144), (144, 186), (186, 228), (228, 270), (270, 312)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def models():
    return {
        v: build_detector(ModelConfig(variant=v, width=0.125), 20, init_backbone=False)
        for v in ("ssd", "shallow", "mdssd")
    }


def _per_level(model):
    return [(lv.name, lv.size, lv.boxes_per_cell) for lv in model.levels]


def test_ssd300_has_8732_boxes_on_published_sources(models):
    m = models["ssd"]
    assert _per_level(m) == [
        ("conv4_3", 38, 4), ("fc7", 19, 6), ("conv8_2", 10, 6), ("conv9_2", 5, 6), ("conv10_2", 3, 4), ("conv11_2", 1, 4)
    ]  # fmt: skip
    assert m.anchors.shape == (38 * 38 * 4 + 19 * 19 * 6 + 10 * 10 * 6 + 5 * 5 * 6 + 9 * 4 + 4, 4) == (8732, 4)
    assert [lv.step for lv in m.levels] == [8, 16, 32, 64, 100, 300]
    # First conv4_3 cell: centre 0.5 * 8 / 300; sizes 30 px, sqrt(30 * 60) px, 30 px at aspect 2 and 1/2.
    c, s, r = 4 / 300, 0.1, math.sqrt(2)
    s2 = math.sqrt(0.1 * 0.2)
    expected = [[c, c, s, s], [c, c, s2, s2], [c, c, s * r, s / r], [c, c, s / r, s * r]]
    torch.testing.assert_close(m.anchors[:4], torch.tensor(expected))
    # Second cell moves right (x) by one step, same row.
    torch.testing.assert_close(m.anchors[4, :2], torch.tensor([12 / 300, 4 / 300]))
    # conv10_2: step 100 -> centres 50, 150, 250 px; last box: conv11_2 centre, 264 px at aspect 1/2.
    first10 = 5776 + 2166 + 600 + 150
    assert m.anchors[first10 : first10 + 12 : 4, 0].mul(300).round().tolist() == [50, 150, 250]
    torch.testing.assert_close(m.anchors[-1], torch.tensor([0.5, 0.5, 0.88 / r, 0.88 * r]))
    counts = torch.bincount(m.anchor_levels).tolist()
    assert counts == [5776, 2166, 600, 150, 36, 4]
    assert torch.all(m.anchor_iou_threshold == 0.5)


def test_shallow_adds_conv3_3_with_30px_boxes_and_iou_0_3(models):
    m = models["shallow"]
    assert _per_level(m)[0] == ("conv3_3", 75, 4)
    assert m.anchors.shape[0] == 75 * 75 * 4 + 8732 == 31232
    torch.testing.assert_close(m.anchors[0], torch.tensor([2 / 300, 2 / 300, 0.1, 0.1]))
    assert [(lv.min_size, lv.max_size) for lv in m.levels][:3] == [(30, 60), (60, 102), (102, 144)]
    thr = m.anchor_iou_threshold
    assert torch.all(thr[:22500] == 0.3) and torch.all(thr[22500:] == 0.5)


def test_mdssd_levels_boxes_and_shared_module_sizes(models):
    m = models["mdssd"]
    assert _per_level(m) == [
        ("module1", 75, 6), ("module2", 38, 4), ("module3", 19, 6), ("conv8_2", 10, 6), ("conv9_2", 5, 6),
        ("conv10_2", 3, 4), ("conv11_2", 1, 4),
    ]  # fmt: skip
    assert m.anchors.shape[0] == 75 * 75 * 6 + 38 * 38 * 4 + 19 * 19 * 6 + 600 + 150 + 36 + 4 == 42482
    sizes = [(lv.min_size, lv.max_size) for lv in m.levels]
    assert sizes[0] == sizes[1] == (30, 60) and sizes[2:] == caffe_sizes(6, 300, 0.1, 0.2, 0.9)[1:]


def test_variant_parsing_is_canonical_and_rejects_nonsense():
    assert parse_variant("fem+shallow") == parse_variant("shallow+fem")
    assert parse_variant("atss+fem+shallow").name == "shallow+fem+atss"
    assert parse_variant("ssd").name == "ssd"
    for bad, msg in [
        ("shallow+mdssd", "Module1 already predicts on conv3_3"),
        ("ssd+fem", "cannot be combined"),
        ("fem+fem", "repeated"),
        ("deep", "unknown part 'deep'"),
        ("", "expected"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            parse_variant(bad)
    with pytest.raises(ConfigError, match="model.variant"):
        build_detector(ModelConfig(variant="mdssd+shallow", width=0.125), 3)

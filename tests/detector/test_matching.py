"""IoU and ATSS matching on constructed, hand-checkable cases."""

from __future__ import annotations

import statistics

import pytest
import torch

from pipeline.detector.coding import box_iou, cxcywh_to_xyxy, decode, encode
from pipeline.detector.matching import match_atss, match_iou


def test_box_iou_hand_values_and_padding():
    gt = torch.tensor([[[0.0, 0.0, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0]]])
    anchors = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.1, 0.0, 0.3, 0.2], [0.5, 0.5, 0.6, 0.6]])
    iou = box_iou(gt, anchors)
    assert iou.shape == (1, 2, 3)
    # overlap 0.1 x 0.2 = 0.02; union 0.04 + 0.04 - 0.02 = 0.06
    torch.testing.assert_close(iou[0, 0], torch.tensor([1.0, 1 / 3, 0.0]))
    assert torch.equal(iou[0, 1], torch.zeros(3))  # degenerate padding box: 0, not NaN


def test_encode_decode_roundtrip_and_variances():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    gt = torch.tensor([[[0.42, 0.34, 0.62, 0.74]]])  # cx .52 cy .54 w .2 h .4
    d = encode(gt, anchors)
    # (0.02 / (0.1*0.2), 0.04 / (0.1*0.4), log 1 / 0.2, log 1 / 0.2)
    torch.testing.assert_close(d, torch.tensor([[[1.0, 1.0, 0.0, 0.0]]]))
    torch.testing.assert_close(decode(d, anchors), gt)


def _anchors(*cxcywh):
    a = torch.tensor(cxcywh, dtype=torch.float32)
    return a, cxcywh_to_xyxy(a)


def test_iou_threshold_and_forced_best_anchor():
    _, xy = _anchors(
        [0.25, 0.25, 0.5, 0.5],  # 0: IoU 1 with GT0
        [0.35, 0.25, 0.5, 0.5],  # 1: IoU with GT0 = 0.4*0.5 / (0.25+0.25-0.2) = 2/3
        [0.45, 0.25, 0.5, 0.5],  # 2: 0.3*0.5 / (0.5 - 0.15) = 3/7 < 0.5
        [0.80, 0.80, 0.1, 0.1],  # 3: best anchor of the tiny GT1 (IoU 0.25), below 0.5
    )
    gt = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.775, 0.775, 0.825, 0.825], [0, 0, 0, 0]]])
    labels, boxes = match_iou(gt, torch.tensor([[3, 7, 0]]), xy, torch.full((4,), 0.5))
    assert labels.tolist() == [[3, 3, 0, 7]]  # 0, 1 by threshold; 3 forced; 2 negative
    torch.testing.assert_close(boxes[0, 3], gt[0, 1])
    # Same boxes with threshold 0.4 on anchor 2 only (per-anchor thresholds, as shallow's conv3_3).
    labels, _ = match_iou(gt, torch.tensor([[3, 7, 0]]), xy, torch.tensor([0.5, 0.5, 0.4, 0.5]))
    assert labels.tolist() == [[3, 3, 3, 7]]


def test_forced_anchor_conflict_goes_to_later_gt_and_images_are_independent():
    _, xy = _anchors([0.5, 0.5, 0.4, 0.4], [0.1, 0.1, 0.05, 0.05])
    gt_a = [[0.3, 0.3, 0.6, 0.6], [0.4, 0.4, 0.7, 0.7]]  # both GTs' best anchor is 0
    gt = torch.tensor([gt_a, [[0.0, 0.0, 0.0, 0.0], [0.075, 0.075, 0.125, 0.125]]])
    gl = torch.tensor([[1, 2], [0, 5]])
    labels, boxes = match_iou(gt, gl, xy, torch.full((2,), 0.5))
    assert labels.tolist() == [[2, 0], [0, 5]]  # ssd.pytorch's loop: the later GT wins
    alone, _ = match_iou(gt[1:], gl[1:], xy, torch.full((2,), 0.5))
    assert torch.equal(alone, labels[1:])


def test_empty_gt_gives_background_everywhere():
    _, xy = _anchors([0.5, 0.5, 0.4, 0.4])
    labels, _ = match_iou(torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.long), xy, torch.full((1,), 0.5))
    assert labels.shape == (2, 1) and not labels.any()
    labels, _ = match_iou(torch.zeros(1, 3, 4), torch.zeros(1, 3, dtype=torch.long), xy, torch.full((1,), 0.5))
    assert not labels.any()


GT = [0.2, 0.2, 0.6, 0.6]  # centre (0.4, 0.4)


def test_atss_candidates_threshold_by_hand():
    anc, xy = _anchors(
        # level 0 (centre distance to the GT centre; IoU with the GT)
        [0.40, 0.40, 0.40, 0.40],  # a0: d 0,    IoU 1
        [0.45, 0.40, 0.40, 0.40],  # a1: d 0.05, IoU 0.14 / 0.18 = 7/9
        [0.40, 0.70, 0.40, 0.40],  # a2: d 0.3,  IoU 0.04 / 0.28 = 1/7
        [0.90, 0.90, 0.20, 0.20],  # a3: d 0.71, IoU 0
        # level 1
        [0.40, 0.40, 0.20, 0.20],  # b0: d 0,    IoU 0.25
        [0.10, 0.10, 0.20, 0.20],  # b1: d 0.42, IoU 0
        [0.80, 0.80, 0.10, 0.10],  # b2: d 0.57, IoU 0
    )
    gt, gl, bounds = torch.tensor([[GT]]), torch.tensor([[4]]), [(0, 4), (4, 7)]
    # k = 2: candidates a0, a1 | b0, b1 -> threshold mean + std of (1, 7/9, 1/4, 0) ~= 0.97
    thr = statistics.mean([1, 7 / 9, 0.25, 0]) + statistics.stdev([1, 7 / 9, 0.25, 0])
    assert 7 / 9 < thr < 1
    labels, _ = match_atss(gt, gl, anc, xy, bounds, topk=2)
    assert labels.tolist() == [[4, 0, 0, 0, 0, 0, 0]]
    # k = 3: adds a2 and b2 -> threshold of (1, 7/9, 1/7, 1/4, 0, 0) ~= 0.79, still above 7/9
    ious = [1, 7 / 9, 1 / 7, 0.25, 0, 0]
    assert 7 / 9 < statistics.mean(ious) + statistics.stdev(ious) < 1
    labels, _ = match_atss(gt, gl, anc, xy, bounds, topk=3)
    assert labels.tolist() == [[4, 0, 0, 0, 0, 0, 0]]
    # k = 20 is capped at the level sizes (4 and 3): every anchor is a candidate.
    ious = [1, 7 / 9, 1 / 7, 0, 0.25, 0, 0]
    thr = statistics.mean(ious) + statistics.stdev(ious)
    assert 7 / 9 > thr > 0.25
    labels, _ = match_atss(gt, gl, anc, xy, bounds, topk=20)
    assert labels.tolist() == [[4, 4, 0, 0, 0, 0, 0]]


def test_atss_needs_centre_inside_gt():
    anc, xy = _anchors(
        [0.62, 0.40, 0.84, 0.40],  # c0: centre right of the GT; IoU 0.16 / 0.336 = 0.476
        [0.40, 0.40, 0.30, 0.30],  # c1: inside, IoU 0.09 / 0.16 = 0.5625
        [0.40, 0.40, 0.20, 0.20],  # c2: inside, IoU 0.25
        [0.90, 0.90, 0.10, 0.10],
        [0.95, 0.05, 0.10, 0.10],
        [0.05, 0.95, 0.10, 0.10],
    )
    ious = [0.16 / 0.336, 0.5625, 0.25, 0, 0, 0]
    thr = statistics.mean(ious) + statistics.stdev(ious)
    assert 0.25 < thr < 0.16 / 0.336  # c0 clears the threshold ...
    labels, _ = match_atss(torch.tensor([[GT]]), torch.tensor([[2]]), anc, xy, [(0, 6)], topk=6)
    assert labels.tolist() == [[0, 2, 0, 0, 0, 0]]  # ... but only c1 is positive


def test_atss_shared_anchor_goes_to_highest_iou_and_padding_is_ignored():
    anc, xy = _anchors([0.40, 0.40, 0.40, 0.40], [0.9, 0.9, 0.1, 0.1], [0.1, 0.9, 0.1, 0.1])
    gt = torch.tensor([[[0.2, 0.2, 0.6, 0.6], [0.22, 0.2, 0.62, 0.6], [0, 0, 0, 0]]])
    labels, boxes = match_atss(gt, torch.tensor([[1, 2, 0]]), anc, xy, [(0, 3)], topk=3)
    assert labels.tolist() == [[1, 0, 0]]
    torch.testing.assert_close(boxes[0, 0], gt[0, 0])


@pytest.mark.parametrize("atss", [False, True])
def test_matchers_vectorised_over_batch(atss):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(50, 4, generator=g) * torch.tensor([1, 1, 0.3, 0.3]) + torch.tensor([0, 0, 0.05, 0.05])
    xy = cxcywh_to_xyxy(a)
    lo = torch.rand(3, 4, 2, generator=g) * 0.6
    gt = torch.cat((lo, lo + 0.1 + torch.rand(3, 4, 2, generator=g) * 0.3), -1)
    gl = torch.tensor([[1, 2, 0, 0], [3, 1, 2, 2], [0, 0, 0, 0]])

    def run(b, lbl):
        if atss:
            return match_atss(b, lbl, a, xy, [(0, 20), (20, 50)], topk=5)[0]
        return match_iou(b, lbl, xy, torch.full((50,), 0.5))[0]

    batched = run(gt, gl)
    for i in range(3):
        assert torch.equal(batched[i : i + 1], run(gt[i : i + 1], gl[i : i + 1]))
    assert not batched[2].any() and batched[1].any()

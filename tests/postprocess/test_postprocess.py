"""Batched NMS / Soft-NMS against the per-box reference loop (tests/postprocess/reference.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import ConfigError, parse
from pipeline.postprocess import Detections, PostprocessConfig, postprocess
from tests.postprocess.reference import reference_postprocess

METHODS = ["nms", "soft_linear", "soft_gaussian"]


def _as_list(d: Detections) -> list[tuple[int, tuple[float, ...], float]]:
    return [
        (int(lbl), tuple(float(v) for v in box), float(s))
        for box, s, lbl in zip(d.boxes.tolist(), d.scores.tolist(), d.labels.tolist(), strict=False)
    ]


def assert_matches_reference(
    boxes: np.ndarray, scores: np.ndarray, cfg: PostprocessConfig, run: Callable = postprocess
) -> None:
    """``run(boxes, scores, cfg)`` (default: :func:`postprocess`) gives the reference's detections."""
    fast = run(torch.from_numpy(boxes), torch.from_numpy(scores), cfg)
    ref = reference_postprocess(
        boxes, scores, cfg.method, cfg.score_threshold, cfg.iou_threshold, cfg.sigma, cfg.top_k, cfg.min_score
    )
    assert len(fast) == len(ref)
    for i, (f, r) in enumerate(zip(fast, ref, strict=False)):
        got = _as_list(f)
        assert len(got) == len(r), f"image {i}: {len(got)} detections, reference {len(r)}"
        assert all(a[2] >= b[2] for a, b in zip(got, got[1:], strict=False)), "scores not sorted"
        remaining = list(got)
        for c, a, s in r:
            box = tuple(float(v) for v in boxes[i, a])
            hit = next(
                (j for j, g in enumerate(remaining) if g[0] == c and g[1] == box and abs(g[2] - s) <= 1e-5),
                None,
            )
            assert hit is not None, f"image {i}: reference detection {(c, box, s)} missing from {remaining}"
            remaining.pop(hit)


@st.composite
def batches(draw, max_anchors: int = 24, discrete_scores: bool | None = None):
    n = draw(st.integers(1, 3))
    a = draw(st.integers(0, max_anchors))
    c = draw(st.integers(1, 3))
    coords = st.floats(0.0, 1.0, width=32)
    xy = np.array(draw(st.lists(coords, min_size=n * a * 2, max_size=n * a * 2)), np.float32).reshape(n, a, 2)
    wh = (
        np.array(draw(st.lists(coords, min_size=n * a * 2, max_size=n * a * 2)), np.float32).reshape(n, a, 2)
        * 0.5
    )
    # Snap some boxes onto a coarse grid so identical / nested boxes are common.
    if draw(st.booleans()):
        xy, wh = np.round(xy * 4) / 4, np.round(wh * 4) / 4
    boxes = np.concatenate([xy, xy + wh], -1).astype(np.float32)
    discrete = draw(st.booleans()) if discrete_scores is None else discrete_scores
    if discrete:  # many exact ties
        vals = st.sampled_from([0.0, 0.005, 0.02, 0.25, 0.5, 0.75, 0.9])
    else:
        vals = st.floats(0.0, 1.0, width=32)
    scores = np.array(draw(st.lists(vals, min_size=n * a * c, max_size=n * a * c)), np.float32).reshape(
        n, a, c
    )
    return boxes, scores


# Random Soft-NMS cases: a batch and a config (shared with the fused kernel's cases).
soft_nms_cases = given(
    data=batches(),
    cfg=st.builds(
        PostprocessConfig,
        method=st.sampled_from(["soft_linear", "soft_gaussian"]),
        iou_threshold=st.sampled_from([0.3, 0.45, 0.5]),
        sigma=st.sampled_from([0.1, 0.5, 2.0]),
        top_k=st.integers(1, 80),
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@soft_nms_cases
def test_soft_nms_matches_reference(data, cfg):
    assert_matches_reference(*data, cfg)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=batches(discrete_scores=False), iou_t=st.sampled_from([0.3, 0.45, 0.7]), top_k=st.integers(1, 80))
def test_hard_nms_matches_reference(data, iou_t, top_k):
    boxes, scores = data
    # torchvision breaks exact score ties in its own order: make scores distinct.
    flat = scores.reshape(-1)
    flat += np.arange(flat.size, dtype=np.float32) * 1e-6
    assert_matches_reference(boxes, scores, PostprocessConfig(method="nms", iou_threshold=iou_t, top_k=top_k))


@pytest.mark.parametrize("method", METHODS)
def test_identical_boxes_and_tied_scores(method):
    boxes = np.tile(np.array([0.1, 0.1, 0.5, 0.5], np.float32), (1, 6, 1))
    scores = np.full((1, 6, 2), 0.6, np.float32)
    out = postprocess(torch.from_numpy(boxes), torch.from_numpy(scores), PostprocessConfig(method=method))[0]
    if method == "nms":
        assert len(out) == 2  # one per class
    elif method == "soft_linear":
        assert len(out) == 2  # IoU 1 -> score 0 -> dropped below the floor
    else:
        # Gaussian, IoU 1: each pick multiplies the rest by exp(-1/0.5).
        expected = [0.6 * math.exp(-2.0) ** j for j in range(6) if 0.6 * math.exp(-2.0) ** j >= 0.001]
        got = sorted(out.scores.tolist(), reverse=True)
        np.testing.assert_allclose(got, sorted(expected * 2, reverse=True), rtol=1e-5)
    assert_matches_reference(boxes, scores, PostprocessConfig(method=method))


def tie_between_overlapping_boxes() -> tuple[np.ndarray, np.ndarray]:
    """Two distinct boxes with IoU 1/3 and the same score: the lower anchor must win the tie."""
    boxes = np.array([[[0, 0, 2, 1], [1, 0, 3, 1]]], np.float32)
    return boxes, np.array([[[0.5], [0.5]]], np.float32)


@pytest.mark.parametrize("method", METHODS)
def test_score_tie_picks_the_lower_anchor(method):
    boxes, scores = tie_between_overlapping_boxes()
    out = postprocess(
        torch.from_numpy(boxes), torch.from_numpy(scores), PostprocessConfig(method, iou_threshold=0.3)
    )
    assert out[0].boxes[0].tolist() == [0, 0, 2, 1]
    if method != "nms":
        assert out[0].boxes[1].tolist() == [1, 0, 3, 1] and out[0].scores[1] < 0.5


def test_hand_computed_linear_and_gaussian_decay():
    # Two boxes with IoU exactly 1/3 (area 2 each, intersection 1), one class.
    boxes = np.array([[[0, 0, 2, 1], [1, 0, 3, 1]]], np.float32)
    scores = np.array([[[0.9], [0.8]]], np.float32)
    lin = postprocess(
        torch.from_numpy(boxes), torch.from_numpy(scores), PostprocessConfig("soft_linear", iou_threshold=0.3)
    )
    np.testing.assert_allclose(lin[0].scores.numpy(), [0.9, 0.8 * (1 - 1 / 3)], rtol=1e-6)
    lin_hi = postprocess(
        torch.from_numpy(boxes), torch.from_numpy(scores), PostprocessConfig("soft_linear", iou_threshold=0.5)
    )
    np.testing.assert_allclose(lin_hi[0].scores.numpy(), [0.9, 0.8], rtol=1e-6)  # IoU < t: unchanged
    gau = postprocess(
        torch.from_numpy(boxes), torch.from_numpy(scores), PostprocessConfig("soft_gaussian", sigma=0.5)
    )
    np.testing.assert_allclose(gau[0].scores.numpy(), [0.9, 0.8 * math.exp(-(1 / 9) / 0.5)], rtol=1e-6)
    hard = postprocess(
        torch.from_numpy(boxes), torch.from_numpy(scores), PostprocessConfig("nms", iou_threshold=0.3)
    )
    assert hard[0].scores.tolist() == pytest.approx([0.9])


def test_nested_boxes_decay_changes_ranking():
    # A big box containing a small one (IoU 0.25) and a third box far away.
    boxes = np.array([[[0, 0, 4, 4], [0, 0, 2, 2], [10, 10, 11, 11]]], np.float32)
    scores = np.array([[[0.9], [0.6], [0.5]]], np.float32)
    out = postprocess(
        torch.from_numpy(boxes), torch.from_numpy(scores), PostprocessConfig("soft_gaussian", sigma=0.05)
    )[0]
    # 0.6 * exp(-0.0625 / 0.05) = 0.172 < 0.5: the far box now ranks second.
    np.testing.assert_allclose(out.scores.numpy(), [0.9, 0.5, 0.6 * math.exp(-0.0625 / 0.05)], rtol=1e-6)
    assert out.boxes[1].tolist() == [10, 10, 11, 11]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(2, 0, 3), (1, 5, 2)])
def test_empty_input_and_no_candidates(method, shape):
    boxes = torch.rand(shape[0], shape[1], 4)
    scores = torch.full(shape, 0.005)  # all below the 0.01 threshold
    out = postprocess(boxes, scores, PostprocessConfig(method=method))
    assert len(out) == shape[0] and all(len(d) == 0 for d in out)
    assert all(d.boxes.shape == (0, 4) and d.labels.dtype == torch.int64 for d in out)


@pytest.mark.parametrize("method", METHODS)
def test_thousands_of_boxes(method):
    rng = np.random.default_rng(0)
    a = 1500
    xy = rng.random((1, a, 2), dtype=np.float32) * 0.8
    boxes = np.concatenate([xy, xy + 0.05 + rng.random((1, a, 2), dtype=np.float32) * 0.2], -1)
    scores = (rng.random((1, a, 2), dtype=np.float32) ** 6).astype(np.float32)  # mostly low scores
    cfg = PostprocessConfig(method=method, candidates_per_class=a)
    assert_matches_reference(boxes, scores, cfg)


def test_candidate_cap_keeps_only_top_per_class():
    boxes = torch.tensor([[[i * 10.0, 0.0, i * 10.0 + 5.0, 5.0] for i in range(6)]])  # disjoint
    scores = torch.linspace(0.2, 0.7, 6).reshape(1, 6, 1)
    for method in METHODS:
        out = postprocess(boxes, scores, PostprocessConfig(method=method, candidates_per_class=3))[0]
        np.testing.assert_allclose(out.scores.numpy(), [0.7, 0.6, 0.5], rtol=1e-6)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, A, 4\)"):
        postprocess(torch.rand(2, 5, 3), torch.rand(2, 5, 2), PostprocessConfig())
    with pytest.raises(ValueError, match="scores must have shape"):
        postprocess(torch.rand(2, 5, 4), torch.rand(2, 6, 2), PostprocessConfig())


def test_config_validation_names_key():
    with pytest.raises(ConfigError, match=r"evaluate\.postprocess\.sigma"):
        parse(PostprocessConfig, {"sigma": 0.0}, "evaluate.postprocess")
    with pytest.raises(ConfigError, match=r"evaluate\.postprocess\.method"):
        parse(PostprocessConfig, {"method": "soft"}, "evaluate.postprocess")


@pytest.mark.parametrize("method", ["nms", "soft_linear"])
def test_score_floor_keeps_exactly_the_boxes_at_or_above_it(method):
    # three separate boxes of one class scoring 0.2, 0.3 and 0.4 (exact in float32): a floor of 0.3 keeps two
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [40.0, 40.0, 50.0, 50.0]]])
    scores = torch.tensor([[[0.0, 0.2], [0.0, 0.3], [0.0, 0.4]]])
    floor = float(torch.tensor(0.3))  # the float32 score, as a Python float
    cfg = PostprocessConfig(method=method)
    assert postprocess(boxes, scores, cfg)[0].scores.numel() == 3
    kept = postprocess(boxes, scores, cfg.with_score_floor(floor))[0]
    assert sorted(kept.scores.tolist()) == pytest.approx([0.3, 0.4])
    assert cfg.with_score_floor(0.001).score_threshold == cfg.score_threshold  # never lowers the threshold


@given(st.floats(min_value=1e-6, max_value=0.999, allow_nan=False))
def test_float32_below_is_exactly_at_or_above_for_float32_scores(score):
    from pipeline.postprocess.config import float32_below

    below = np.float32(float32_below(score))
    up = np.nextafter(below, np.float32(1.0))
    assert float(below) < score <= float(up)  # nothing float32 lies strictly between: > below is >= score

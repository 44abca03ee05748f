"""Cases for the fused Triton Soft-NMS kernel under Triton's interpreter (CPU).

Run by tests/postprocess/test_soft_nms_fused.py in a subprocess with
TRITON_INTERPRET=1 set before triton is imported (Triton decides at import/jit
time whether to interpret); not collected by a plain ``pytest`` run.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from pipeline.postprocess import PostprocessConfig, soft_nms, soft_nms_triton
from tests.postprocess.test_postprocess import (
    assert_matches_reference,
    soft_nms_cases,
    tie_between_overlapping_boxes,
)

if os.environ.get("TRITON_INTERPRET") != "1":
    raise RuntimeError("run these cases with TRITON_INTERPRET=1 (see test_soft_nms_fused.py)")

fused = functools.partial(soft_nms, backend="fused")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@soft_nms_cases
def test_fused_matches_reference(data, cfg):
    assert_matches_reference(*data, cfg, run=fused)


@pytest.mark.parametrize("method", ["soft_linear", "soft_gaussian"])
def test_fused_identical_boxes_and_ties(method):
    boxes = np.tile(np.array([0.1, 0.1, 0.5, 0.5], np.float32), (2, 7, 1))
    boxes[1, 3:] = [0.0, 0.0, 0.0, 0.0]  # zero-area boxes: IoU 0 with everything, themselves too
    scores = np.full((2, 7, 3), 0.6, np.float32)
    assert_matches_reference(boxes, scores, PostprocessConfig(method=method), run=fused)


@pytest.mark.parametrize("method", ["soft_linear", "soft_gaussian"])
def test_fused_equals_torch_loop_on_many_boxes(method):
    rng = np.random.default_rng(1)
    a = 700
    xy = rng.random((2, a, 2), dtype=np.float32) * 0.8
    boxes = torch.from_numpy(
        np.concatenate([xy, xy + 0.05 + rng.random((2, a, 2), dtype=np.float32) * 0.2], -1)
    )
    scores = torch.from_numpy((rng.random((2, a, 3), dtype=np.float32) ** 4).astype(np.float32))
    cfg = PostprocessConfig(method=method, candidates_per_class=a, top_k=300)
    for f, t in zip(fused(boxes, scores, cfg), soft_nms(boxes, scores, cfg, backend="torch"), strict=True):
        assert len(f) == len(t) == 300
        assert torch.equal(f.labels, t.labels) and torch.equal(f.boxes, t.boxes)
        torch.testing.assert_close(f.scores, t.scores, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", ["soft_linear", "soft_gaussian"])
def test_fused_score_tie_picks_the_lower_anchor(method):
    boxes, scores = tie_between_overlapping_boxes()
    out = fused(
        torch.from_numpy(boxes), torch.from_numpy(scores), PostprocessConfig(method, iou_threshold=0.3)
    )
    assert out[0].boxes.tolist() == [[0, 0, 2, 1], [1, 0, 3, 1]] and out[0].scores[1] < 0.5


def test_fused_empty_input():
    out = fused(torch.rand(2, 0, 4), torch.rand(2, 0, 3), PostprocessConfig(method="soft_linear"))
    assert len(out) == 2 and all(len(d) == 0 for d in out)


def test_fused_on_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(soft_nms_triton.triton.knobs.runtime, "interpret", False)
    with pytest.raises(RuntimeError, match="needs CUDA"):
        fused(torch.rand(1, 4, 4), torch.rand(1, 4, 2), PostprocessConfig(method="soft_linear"))
    # auto falls back to the torch loop on the CPU
    assert (
        len(soft_nms(torch.rand(1, 4, 4), torch.rand(1, 4, 2), PostprocessConfig(method="soft_linear"))) == 1
    )


def test_fused_candidate_cap_is_bounded():
    cfg = PostprocessConfig(method="soft_linear", candidates_per_class=soft_nms_triton.MAX_CANDIDATES + 1)
    with pytest.raises(ValueError, match="candidates_per_class must be <= 2048"):
        fused(torch.rand(1, 4, 4), torch.rand(1, 4, 2), cfg)


def test_soft_nms_needs_a_positive_floor():
    with pytest.raises(ValueError, match="min_score > 0"):
        soft_nms(
            torch.rand(1, 4, 4), torch.rand(1, 4, 2), PostprocessConfig(method="soft_linear", min_score=0.0)
        )


_sn = importlib.import_module("pipeline.postprocess.soft_nms")  # the module, not the re-exported function


def test_self_check_passes_for_the_real_kernel():
    """The gate every fused call passes (checked once per process: earlier cases already paid for it)."""
    assert _sn._fused_trusted(torch.device("cpu"))
    assert _sn._FUSED_TRUSTED == {"cpu": True}


def test_broken_kernel_is_caught_logged_once_and_replaced(monkeypatch, caplog):
    real = _sn._run_groups_fused

    def broken(boxes, cand, cfg):  # the real kernel with its scores perturbed
        anchor, score = real(boxes, cand, cfg)
        return anchor, score * 1.001

    monkeypatch.setattr(_sn, "_FUSED_TRUSTED", {})
    monkeypatch.setattr(_sn, "_run_groups_fused", broken)
    boxes, scores = _sn._self_check_case(torch.device("cpu"))
    cfg = PostprocessConfig(method="soft_linear")
    with caplog.at_level(logging.WARNING, logger=_sn.__name__):
        outs = [fused(boxes, scores, cfg) for _ in range(2)]
    assert [r.levelno for r in caplog.records].count(logging.WARNING) == 1
    assert "decayed scores differ" in caplog.records[0].getMessage()
    for out in outs:
        for f, t in zip(out, soft_nms(boxes, scores, cfg, backend="torch"), strict=True):
            assert torch.equal(f.boxes, t.boxes) and torch.equal(f.scores, t.scores)

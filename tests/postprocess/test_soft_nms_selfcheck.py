"""The fused-kernel self-check (:func:`check_fused`) and the fallback it guards, on the CPU.

Here the "fused" side is the torch loop itself, perturbed or raising; the real Triton
kernel is checked the same way under Triton's interpreter in fused_cases.py.
"""

from __future__ import annotations

import importlib
import logging

import numpy as np
import pytest
import torch

from pipeline.postprocess import PostprocessConfig, soft_nms

sn = importlib.import_module("pipeline.postprocess.soft_nms")  # the package re-exports the function by that name

CPU = torch.device("cpu")


def perturbed(run):  # noqa: ANN001, ANN201 - a GroupRunner wrapper
    def broken(boxes, cand, cfg):  # noqa: ANN001, ANN202
        anchor, score = run(boxes, cand, cfg)
        return anchor, score * 1.001  # a wrong decay, 1e-3 relative
    return broken


def raising(boxes, cand, cfg):  # noqa: ANN001, ANN201
    raise RuntimeError("no kernel image is available for execution on the device")


def test_identical_implementations_pass():
    assert sn.check_fused(sn._run_groups, sn._run_groups, CPU) is None


def test_perturbed_scores_and_swapped_picks_fail():
    assert "decayed scores differ" in sn.check_fused(perturbed(sn._run_groups), sn._run_groups, CPU)

    def swapped(boxes, cand, cfg):  # noqa: ANN001, ANN202
        anchor, score = sn._run_groups(boxes, cand, cfg)
        return anchor.flip(-1), score
    assert "picks" in sn.check_fused(swapped, sn._run_groups, CPU)


def test_raising_kernel_fails_with_its_message():
    problem = sn.check_fused(raising, sn._run_groups, CPU)
    assert "RuntimeError" in problem and "no kernel image" in problem


def test_self_check_case_has_no_near_ties():
    """Picks must not hinge on float32 rounding (a GPU's exp differs in the last bits): at every greedy
    step of the fixed case the best score leads the runner-up by > 1e-4 relative (float64 loop)."""
    boxes, scores = (t.double().numpy() for t in sn._self_check_case(CPU))
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    for linear in (True, False):
        for i in range(boxes.shape[0]):
            for c in range(scores.shape[2]):
                cur = scores[i, :, c].copy()
                for _ in range(50):
                    order = np.argsort(-cur)
                    m, second = order[0], order[1]
                    if cur[m] < 0.001:
                        break
                    if cur[second] >= 0.001:
                        assert cur[m] - cur[second] > 1e-4 * cur[m]
                    lt = np.maximum(boxes[i, m, :2], boxes[i, :, :2])
                    rb = np.minimum(boxes[i, m, 2:], boxes[i, :, 2:])
                    inter = np.clip(rb - lt, 0, None).prod(-1)
                    iou = inter / (area[i, m] + area[i] - inter)
                    cur = cur * (np.where(iou >= 0.3, 1 - iou, 1.0) if linear else np.exp(-iou**2 / 0.5))
                    cur[m] = -1.0


@pytest.mark.parametrize("bad", [perturbed(sn._run_groups), raising])
def test_failed_check_logs_once_and_falls_back_to_the_torch_loop(bad, monkeypatch, caplog):
    """As on CUDA: the fused path is chosen, fails its check, and the torch loop gives the results."""
    monkeypatch.setattr(sn, "_FUSED_TRUSTED", {})
    monkeypatch.setattr(sn, "_use_fused", lambda *a: True)
    monkeypatch.setattr(sn, "_run_groups_fused", bad)
    gen = torch.Generator().manual_seed(3)
    boxes = torch.rand(2, 30, 2, generator=gen).mul(0.5).repeat(1, 1, 2).add(torch.tensor([0, 0, 0.3, 0.3]))
    scores = torch.rand(2, 30, 4, generator=gen)
    cfg = PostprocessConfig(method="soft_gaussian")
    with caplog.at_level(logging.WARNING, logger=sn.__name__):
        first = soft_nms(boxes, scores, cfg, backend="fused")
        second = soft_nms(boxes, scores, cfg, backend="fused")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "using the torch loop" in warnings[0].getMessage()
    for got in (first, second):
        for g, t in zip(got, soft_nms(boxes, scores, cfg, backend="torch"), strict=True):
            assert torch.equal(g.boxes, t.boxes) and torch.equal(g.scores, t.scores)
    assert sn._FUSED_TRUSTED == {"cpu": False}


def test_passing_check_keeps_the_fused_path(monkeypatch):
    monkeypatch.setattr(sn, "_FUSED_TRUSTED", {})
    calls = []

    def fused(boxes, cand, cfg):  # noqa: ANN001, ANN202
        calls.append(1)
        return sn._run_groups(boxes, cand, cfg)
    monkeypatch.setattr(sn, "_use_fused", lambda *a: True)
    monkeypatch.setattr(sn, "_run_groups_fused", fused)
    soft_nms(torch.rand(1, 8, 4).sort(-1).values, torch.rand(1, 8, 2), PostprocessConfig(method="soft_linear"))
    assert sn._FUSED_TRUSTED == {"cpu": True} and len(calls) == 3  # two check runs, then the real one

"""Fused Soft-NMS kernel (Triton): one program per (image, class) group, one launch per batch.

The torch path (:func:`pipeline.postprocess.soft_nms.soft_nms_groups`) issues a few
kernels per greedy step, so on a GPU its time is kernel launches, not arithmetic.
Here each program keeps its group's boxes and scores in registers and runs the
whole greedy loop itself: pick the first maximum, compute that box's IoU with the
group, decay, repeat, for at most ``min(count, max_steps)`` steps.  Same
arithmetic as the torch path (IoU, thresholded-linear / Gaussian decay in fp32),
same tie-breaking (first maximum = lowest anchor), same output layout.

Runs on CUDA tensors, or on CPU tensors under Triton's interpreter
(``TRITON_INTERPRET=1``), which is how the tests check it without a GPU.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with Linux torch wheels
    triton = None


# A group lives in registers: at most this many candidates per (image, class).
MAX_CANDIDATES = 2048


def available(device: torch.device) -> bool:
    """Whether the fused kernel can run on ``device`` (CUDA, or the CPU under the interpreter)."""
    if triton is None:
        return False
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (7, 0)  # Triton's oldest supported GPUs
    return device.type == "cpu" and _interpreting()


def _interpreting() -> bool:
    """Whether ``triton.jit`` builds interpreted kernels (``TRITON_INTERPRET=1``)."""
    knobs = getattr(triton, "knobs", None)  # Triton >= 3.4
    return bool(knobs.runtime.interpret) if knobs else os.environ.get("TRITON_INTERPRET") == "1"


def _soft_nms_kernel(
    boxes_ptr,  # (N, A, 4) fp32 contiguous
    anchor_ptr,  # (G, K) int64: candidates of each group, valid ones first
    score_ptr,  # (G, K) fp32: padding < min_score
    count_ptr,  # (G,) int64 valid candidates per group
    image_ptr,  # (G,) int64 image of each group
    pick_ptr,  # (G, K) int64 out: position picked at each step (pre-filled 0)
    picked_ptr,  # (G, K) fp32 out: its decayed score (pre-filled -1)
    num_anchors,
    k,
    max_steps,
    iou_threshold,
    sigma,
    LINEAR: tl.constexpr,
    BLOCK: tl.constexpr,
):
    g = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    inside = offs < k
    row = g.to(tl.int64) * k
    count = tl.load(count_ptr + g)
    image = tl.load(image_ptr + g)
    anchor = tl.load(anchor_ptr + row + offs, mask=inside, other=0)
    cur = tl.load(score_ptr + row + offs, mask=inside, other=-1.0)
    box = boxes_ptr + (image * num_anchors + anchor) * 4
    x0 = tl.load(box + 0, mask=inside, other=0.0)
    y0 = tl.load(box + 1, mask=inside, other=0.0)
    x1 = tl.load(box + 2, mask=inside, other=0.0)
    y1 = tl.load(box + 3, mask=inside, other=0.0)
    area = tl.maximum(x1 - x0, 0.0) * tl.maximum(y1 - y0, 0.0)
    for step in range(0, tl.minimum(count, max_steps)):
        best, m = tl.max(cur, 0, return_indices=True, return_indices_tie_break_left=True)
        tl.store(pick_ptr + row + step, m.to(tl.int64))
        tl.store(picked_ptr + row + step, best)
        chosen = offs == m
        mx0 = tl.sum(tl.where(chosen, x0, 0.0), 0)
        my0 = tl.sum(tl.where(chosen, y0, 0.0), 0)
        mx1 = tl.sum(tl.where(chosen, x1, 0.0), 0)
        my1 = tl.sum(tl.where(chosen, y1, 0.0), 0)
        m_area = tl.maximum(mx1 - mx0, 0.0) * tl.maximum(my1 - my0, 0.0)
        iw = tl.maximum(tl.minimum(x1, mx1) - tl.maximum(x0, mx0), 0.0)
        ih = tl.maximum(tl.minimum(y1, my1) - tl.maximum(y0, my0), 0.0)
        inter = iw * ih
        union = m_area + area - inter
        iou = tl.where(union > 0.0, tl.math.div_rn(inter, tl.where(union > 0.0, union, 1.0)), 0.0)
        if LINEAR:
            decay = tl.where(iou >= iou_threshold, 1.0 - iou, 1.0)
        else:
            decay = tl.exp(iou * iou / -sigma)
        cur = tl.where(chosen, 0.0, cur * decay)


# Argument types of the launch in soft_nms_groups_fused (for ahead-of-time compilation).
KERNEL_SIGNATURE = {
    "boxes_ptr": "*fp32", "anchor_ptr": "*i64", "score_ptr": "*fp32", "count_ptr": "*i64", "image_ptr": "*i64",
    "pick_ptr": "*i64", "picked_ptr": "*fp32", "num_anchors": "i32", "k": "i32", "max_steps": "i32",
    "iou_threshold": "fp32", "sigma": "fp32", "LINEAR": "constexpr", "BLOCK": "constexpr",
}  # fmt: skip


def compile_for(arch: int, linear: bool, block: int):  # noqa: ANN201 - a triton CompiledKernel
    """Compile the kernel ahead of time for CUDA compute capability ``arch`` (e.g. 90 = H100).

    Needs no GPU (Triton ships ptxas); the tests use it to check that the kernel
    builds for the GPUs it targets, which the interpreter alone cannot show.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    src = ASTSource(
        fn=triton.jit(_soft_nms_kernel),
        signature=KERNEL_SIGNATURE,
        constexprs={"LINEAR": linear, "BLOCK": block},
    )
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": _num_warps(block)})


def _num_warps(block: int) -> int:
    return 4 if block <= 256 else 8


@functools.cache
def _compiled(interpret: bool):  # noqa: ANN202 - a triton JITFunction
    """The kernel, jitted for the current mode (the interpreter is chosen at jit time)."""
    del interpret  # part of the cache key only
    return triton.jit(_soft_nms_kernel)


def soft_nms_groups_fused(
    boxes: Tensor,
    anchor: Tensor,
    score: Tensor,
    counts: Tensor,
    image: Tensor,
    linear: bool,
    iou_threshold: float,
    sigma: float,
    max_steps: int,
) -> tuple[Tensor, Tensor]:
    """Greedy Soft-NMS of every group in one launch.

    Args:
        boxes: (N, A, 4) xyxy of the whole batch.
        anchor: (G, K) candidate anchor indices per group, valid ones first.
        score: (G, K) their scores (padding -1).
        counts: (G,) valid candidates per group; image: (G,) image index per group.
        max_steps: picks per group at most (the per-image top-k).
    Returns:
        ``pick`` (G, K) int64 position picked at each step and ``picked_score`` (G, K),
        as :func:`pipeline.postprocess.soft_nms.soft_nms_groups`.
    """
    g, k = score.shape
    pick = torch.zeros((g, k), dtype=torch.int64, device=score.device)
    picked = torch.full((g, k), -1.0, dtype=torch.float32, device=score.device)
    if g == 0 or k == 0:
        return pick, picked
    block = max(16, triton.next_power_of_2(k))
    kernel = _compiled(_interpreting())
    kernel[(g,)](
        boxes.float().contiguous(),
        anchor.contiguous(),
        score.float().contiguous(),
        counts.to(torch.int64).contiguous(),
        image.to(torch.int64).contiguous(),
        pick,
        picked,
        boxes.shape[1],
        k,
        max_steps,
        float(iou_threshold),
        float(sigma),
        LINEAR=linear,
        BLOCK=block,
        num_warps=_num_warps(block),
    )
    return pick, picked

"""Post-processing speed per image: batched Soft-NMS (linear, Gaussian) vs torchvision batched hard
NMS on the same candidates, vs the per-box Python reference loop (tests/postprocess/reference.py).

Inputs: SSD300's 8732 default boxes (jittered) × 20 classes with a realistic score
distribution: background-dominated softmax, ~30 objects whose overlapping anchors
score high, so a few hundred (anchor, class) pairs pass the 0.01 threshold.

    python bench/bench_softnms.py [--batch 8] [--iters 20] [--device auto] [--threads 0]

Prints JSON; times are per image, ratios are against hard NMS in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.detector.model import ModelConfig, build_detector  # noqa: E402
from pipeline.postprocess import PostprocessConfig, postprocess, soft_nms, soft_nms_triton  # noqa: E402
from tests.postprocess.reference import reference_postprocess  # noqa: E402


def make_inputs(batch: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 8732, 4) xyxy boxes in [0, 1] and (N, 8732, C) softmax scores without background."""
    gen = torch.Generator().manual_seed(seed)
    anchors = build_detector(ModelConfig(width=0.125), classes, init_backbone=False).anchors_xyxy.float()
    a = anchors.shape[0]
    boxes = (anchors + torch.randn(batch, a, 4, generator=gen) * 0.01).clamp(0, 1)
    logits = torch.randn(batch, a, classes + 1, generator=gen)
    logits[..., 0] += 9.0  # background dominates almost everywhere
    for i in range(batch):
        objects = torch.rand(30, 2, generator=gen) * 0.8
        sizes = 0.03 + torch.rand(30, 2, generator=gen) * 0.4
        obj = torch.cat([objects, (objects + sizes).clamp(max=1)], 1)
        lt = torch.maximum(anchors[:, None, :2], obj[None, :, :2])
        rb = torch.minimum(anchors[:, None, 2:], obj[None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(-1)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        iou = inter / (area(anchors)[:, None] + area(obj)[None] - inter)
        best, which = iou.max(1)
        cls = torch.randint(1, classes + 1, (30,), generator=gen)[which]
        logits[i, torch.arange(a), cls] += 14.0 * best
    scores = torch.softmax(logits, -1)[..., 1:]
    return boxes, scores


def timeit(fn, iters: int, sync) -> float:  # noqa: ANN001
    fn()
    sync()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t) / iters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--ref-iters", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    args = ap.parse_args()
    from pipeline.evaluation.infer import resolve_device  # cv2, pyarrow: not needed by the importable helpers

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    boxes, scores = make_inputs(args.batch, args.classes, seed=0)
    above = (scores > 0.01).sum((1, 2)).float()
    boxes, scores = boxes.to(dev), scores.to(dev)
    res: dict = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__, "batch": args.batch, "anchors": int(boxes.shape[1]), "classes": args.classes,
        "candidates_above_0.01_per_image": float(above.mean()), "ms_per_image": {},
    }  # fmt: skip
    runs = [("hard_nms_torchvision", "nms", postprocess)]
    runs += [(m, m, postprocess) for m in ("soft_linear", "soft_gaussian")]  # the default backend
    fused = soft_nms_triton.available(dev)
    if fused:  # on CUDA the default is the fused kernel: time the torch loop too
        runs += [
            (f"{m}_torch_loop", m, partial(soft_nms, backend="torch"))
            for m in ("soft_linear", "soft_gaussian")
        ]
    res["soft_nms_backend"] = "fused" if fused else "torch"
    for name, method, fn in runs:
        cfg = PostprocessConfig(method=method)
        t = timeit(lambda cfg=cfg, fn=fn: fn(boxes, scores, cfg), args.iters, sync)
        res["ms_per_image"][name] = 1e3 * t / args.batch
    b_np, s_np = boxes[:1].cpu().numpy(), scores[:1].cpu().numpy()
    for method in ("soft_linear", "soft_gaussian"):
        t = timeit(lambda m=method: reference_postprocess(b_np, s_np, m), args.ref_iters, lambda: None)
        res["ms_per_image"][f"reference_python_{method}"] = 1e3 * t
    ms = res["ms_per_image"]
    res["ratio_vs_hard_nms"] = {k: v / ms["hard_nms_torchvision"] for k, v in ms.items()}
    res["speedup_fast_vs_reference"] = {
        m: ms[f"reference_python_{m}"] / ms[m] for m in ("soft_linear", "soft_gaussian")
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

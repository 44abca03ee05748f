"""End-to-end inference throughput (forward + decode + post-processing) of our SSD300 vs
torchvision's ``ssd300_vgg16`` (its own transform and postprocess, score_thresh 0.01), same run.

Both models are randomly initialised (no weights can be downloaded here): scores are
then near-uniform, so every anchor passes the 0.01 threshold and both post-processing
steps run at their candidate caps (400 per class for ours and torchvision's) — the
worst case, not a trained model's typical load.  bf16 autocast + channels_last on CUDA.

    python bench/bench_infer.py [--batches 1 32] [--iters 10] [--device auto] [--method soft_linear]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.models.detection import ssd300_vgg16

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.detector.model import ModelConfig, build_detector  # noqa: E402
from pipeline.postprocess import PostprocessConfig, postprocess, soft_nms_triton  # noqa: E402


def inference_runners(
    classes: int, dev: torch.device, method: str, fast: bool, width: float = 1.0, fast_reference: bool | None = None
) -> tuple[Callable[[torch.Tensor], None], Callable[[torch.Tensor], None]]:
    """``(ours, torchvision)``: each runs one batch (N, 3, 300, 300) float [0, 1] end to end.

    Ours: forward + decode + :func:`postprocess` with ``method`` (Soft-NMS: the fused kernel
    on CUDA).  torchvision: ``ssd300_vgg16`` with its own transform and postprocess.
    ``fast``: bf16 autocast and channels_last (what CUDA runs use), for torchvision's too
    unless ``fast_reference`` says otherwise.
    """
    fast_reference = fast if fast_reference is None else fast_reference
    torch.manual_seed(0)
    ours = build_detector(ModelConfig(width=width), classes).eval().to(dev)
    tv = (
        ssd300_vgg16(weights=None, weights_backbone=None, num_classes=classes + 1, score_thresh=0.01)
        .eval()
        .to(dev)
    )
    if fast:
        ours, tv = ours.to(memory_format=torch.channels_last), tv.to(memory_format=torch.channels_last)
    cfg = PostprocessConfig(method=method)

    @torch.inference_mode()
    def run_ours(x: torch.Tensor) -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=fast):
            logits, deltas = ours(x)
        postprocess(*ours.decode(logits.float(), deltas.float()), cfg)

    @torch.inference_mode()
    def run_tv(x: torch.Tensor) -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=fast_reference):
            tv(list(x))

    return run_ours, run_tv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--method", default="soft_linear", choices=["nms", "soft_linear", "soft_gaussian"])
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    from pipeline.evaluation.infer import resolve_device  # cv2, pyarrow: not needed by the importable helpers

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    run_ours, run_tv = inference_runners(args.classes, dev, args.method, cuda)
    res: dict = {
        "device": torch.cuda.get_device_name(dev) if cuda else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__, "precision": "bf16 autocast, channels_last" if cuda else "fp32",
        "postprocess": args.method, "img_per_s": {},
        "soft_nms_backend": "fused" if soft_nms_triton.available(dev) else "torch",
    }  # fmt: skip
    for b in args.batches:
        x = torch.rand(b, 3, 300, 300, device=dev)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        row = {}
        for name, fn in (("ours", run_ours), ("torchvision_ssd300_vgg16", run_tv)):
            fn(x)
            sync()
            t = time.perf_counter()
            for _ in range(args.iters):
                fn(x)
            sync()
            row[name] = b * args.iters / (time.perf_counter() - t)
        row["ratio_ours_vs_torchvision"] = row["ours"] / row["torchvision_ssd300_vgg16"]
        res["img_per_s"][f"batch_{b}"] = row
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

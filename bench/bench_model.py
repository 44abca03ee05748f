"""Model-only training-step throughput of the SSD variants vs torchvision's ssd300_vgg16.

One step = forward + loss (matching, hard-negative mining) + backward + SGD step on a
synthetic batch with realistic ground truth (1–8 boxes per image, sides log-uniform
in 4–80 % of the image, padded to (N, G)).  The reference is
``torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None)``
with its own loss (``model(images, targets)``: per-image Python matching and its
GeneralizedRCNNTransform), run in the same process with the same dtype settings.
On CUDA: bf16 autocast and channels_last for both (``--no-amp`` to disable);
``--compile`` also times ``torch.compile`` of our forward + loss.  Prints JSON.

    python bench/bench_model.py --device cpu --batch 2 --iters 2
    python bench/bench_model.py --device cuda --batch 32 --compile --out bench_model.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.detector.model import ModelConfig, build_detector, describe  # noqa: E402

NUM_CLASSES = 20  # VOC


def synthetic_batch(n: int, size: int, max_gt: int, device: torch.device, seed: int = 0):
    """Images (N, 3, S, S) in [0, 1] and padded GT: boxes (N, G, 4) normalised xyxy, labels (N, G)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=g)
    counts = torch.randint(1, max_gt + 1, (n,), generator=g)
    boxes = torch.zeros(n, max_gt, 4)
    labels = torch.zeros(n, max_gt, dtype=torch.long)
    for i, k in enumerate(counts.tolist()):
        wh = torch.exp(torch.empty(k, 2).uniform_(math.log(0.04), math.log(0.8), generator=g))
        lo = torch.rand(k, 2, generator=g) * (1 - wh)
        boxes[i, :k] = torch.cat((lo, lo + wh), 1)
        labels[i, :k] = torch.randint(1, NUM_CLASSES + 1, (k,), generator=g)
    return images.to(device), boxes.to(device), labels.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per step (median of ``iters`` after ``warmup``)."""
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def bench_torchvision(
    images, gt_boxes, gt_labels, fmt, autocast, warmup: int, iters: int
) -> tuple[float, int]:
    """Seconds per step and parameters of torchvision's SSD300 with its own transform, matcher and loss."""
    device = images.device
    ref = torchvision.models.detection.ssd300_vgg16(
        weights=None, weights_backbone=None, num_classes=NUM_CLASSES + 1
    ).to(device, memory_format=fmt)
    ref.train()
    opt = torch.optim.SGD(ref.parameters(), lr=1e-4, momentum=0.9)
    ref_images = list(images.unbind(0))
    targets = [
        {"boxes": b[lbl > 0] * images.shape[-1], "labels": lbl[lbl > 0]}
        for b, lbl in zip(gt_boxes, gt_labels, strict=True)
    ]

    def step():
        with autocast():
            losses = ref(ref_images, targets)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return time_steps(step, device, warmup, iters), sum(p.numel() for p in ref.parameters())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--variants", default="ssd,shallow,fem,atss,mdssd,shallow+fem+atss")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--max-gt", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too (CPU always fp32)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile(forward + loss)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()

    device = torch.device(a.device)
    cuda = device.type == "cuda"
    amp = cuda and not a.no_amp
    fmt = torch.channels_last if cuda else torch.contiguous_format
    torch.manual_seed(0)
    images, gt_boxes, gt_labels = synthetic_batch(a.batch, 300, a.max_gt, device)
    images = images.contiguous(memory_format=fmt)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()

    result: dict = {
        "device": torch.cuda.get_device_name(device)
        if cuda
        else f"CPU ({platform.processor() or 'unknown'}), {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "batch": a.batch,
        "width": a.width,
        "bf16_autocast": amp,
        "channels_last": cuda,
        "gt_per_image": f"1..{a.max_gt}",
        "timing": f"median of {a.iters} steps after {a.warmup} warm-up",
        "variants": {},
    }

    t_ref, ref_params = bench_torchvision(images, gt_boxes, gt_labels, fmt, autocast, a.warmup, a.iters)
    result["torchvision_ssd300_vgg16"] = {"img_per_s": round(a.batch / t_ref, 2), "params": ref_params}

    for variant in a.variants.split(","):
        model = build_detector(ModelConfig(variant=variant, width=a.width), NUM_CLASSES, init_backbone=False)
        model = model.to(device, memory_format=fmt).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

        def loss_fn(x, b, lbl, model=model):
            with autocast():
                cls, box = model(x)
                return model.loss(cls, box, b, lbl)["loss"]

        entry = {k: describe(model)[k] for k in ("anchors", "params")}
        runs = {"eager": loss_fn}
        if a.compile:
            runs["compiled"] = torch.compile(loss_fn)
        for mode, fn in runs.items():

            def step(fn=fn, opt=opt):
                loss = fn(images, gt_boxes, gt_labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            t = time_steps(step, device, a.warmup + (2 if mode == "compiled" else 0), a.iters)
            entry[mode] = {"img_per_s": round(a.batch / t, 2), "ratio_vs_torchvision": round(t_ref / t, 2)}
        result["variants"][variant] = entry
        del model, opt, runs

    text = json.dumps(result, indent=2)
    print(text)
    if a.out is not None:
        from pipeline.atomic import write_json

        write_json(a.out, result)


if __name__ == "__main__":
    main()

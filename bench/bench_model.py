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
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import time_calls  # noqa: E402
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


def time_steps(step, device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per step (median of ``iters`` after ``warmup``)."""
    return time_calls(step, device, iters, max(1, warmup)).s_per_call


def torchvision_reference(device: torch.device, fmt: torch.memory_format, num_classes: int = NUM_CLASSES):
    """torchvision's SSD300 (random init, ``num_classes`` + background), in training mode."""
    ref = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=num_classes + 1)
    return ref.to(device, memory_format=fmt).train()


def torchvision_train_step(ref, autocast) -> Callable[[Tensor, Tensor, Tensor], None]:
    """One SGD step of torchvision's SSD300 with its own transform, matcher and loss.

    The step takes our batch layout: images (N, 3, S, S) float in [0, 1] or uint8, padded
    GT boxes (N, G, 4) normalised xyxy and labels (N, G) (0 = padding), and converts them
    to torchvision's list of images and target dicts itself.
    """
    opt = torch.optim.SGD(ref.parameters(), lr=1e-4, momentum=0.9)

    def step(images: Tensor, gt_boxes: Tensor, gt_labels: Tensor) -> None:
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        size = images.shape[-1]
        targets = [{"boxes": b[lbl > 0] * size, "labels": lbl[lbl > 0]} for b, lbl in zip(gt_boxes, gt_labels, strict=True)]
        with autocast():
            losses = ref(list(images.unbind(0)), targets)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def detector_train_step(model, autocast, compile_kwargs: dict | None = None) -> Callable[[Tensor, Tensor, Tensor], None]:
    """One SGD step of our detector as the training loop runs it: forward under ``autocast``,
    loss in fp32, backward, step.  ``compile_kwargs`` (e.g. ``{}``): ``torch.compile`` forward + loss."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def loss_fn(x: Tensor, b: Tensor, lbl: Tensor) -> Tensor:
        with autocast():
            cls, box = model(x)
        return model.loss(cls.float(), box.float(), b, lbl)["loss"]

    fn = loss_fn if compile_kwargs is None else torch.compile(loss_fn, **compile_kwargs)

    def step(images: Tensor, gt_boxes: Tensor, gt_labels: Tensor) -> None:
        loss = fn(images, gt_boxes, gt_labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench_torchvision(
    images, gt_boxes, gt_labels, fmt, autocast, warmup: int, iters: int
) -> tuple[float, int]:
    """Seconds per step and parameters of torchvision's SSD300 with its own transform, matcher and loss."""
    ref = torchvision_reference(images.device, fmt)
    step = torchvision_train_step(ref, autocast)
    t = time_steps(lambda: step(images, gt_boxes, gt_labels), images.device, warmup, iters)
    return t, sum(p.numel() for p in ref.parameters())


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
        entry = {k: describe(model)[k] for k in ("anchors", "params")}
        runs = {"eager": detector_train_step(model, autocast)}
        if a.compile:
            runs["compiled"] = detector_train_step(model, autocast, {})
        for mode, step in runs.items():
            t = time_steps(
                lambda step=step: step(images, gt_boxes, gt_labels),
                device,
                a.warmup + (2 if mode == "compiled" else 0),
                a.iters,
            )
            entry[mode] = {"img_per_s": round(a.batch / t, 2), "ratio_vs_torchvision": round(t_ref / t, 2)}
        result["variants"][variant] = entry
        del model, runs

    text = json.dumps(result, indent=2)
    print(text)
    if a.out is not None:
        from pipeline.atomic import write_json

        write_json(a.out, result)


if __name__ == "__main__":
    main()

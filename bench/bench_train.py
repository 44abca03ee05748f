"""Training-throughput benchmark (prints JSON): where does the time go?

For each variant, in one process on one device and batch:
  * ``data_img_s``       — the real input pipeline alone (decode + SSD augmentation in
                           DataLoader workers + collate + host->device copy),
  * ``model_img_s``      — forward + loss + backward + SGD step on a resident batch,
  * ``end_to_end_img_s`` — both together, as :func:`pipeline.detector.train.train` runs,
and the same model-only figure for torchvision's ``ssd300_vgg16`` trained with its own
transform (GeneralizedRCNNTransform) and loss, as the reference:
``model_vs_torchvision = model_img_s / torchvision_model_img_s``.
On CUDA both use bf16 autocast + channels_last (``--compile`` adds torch.compile).

    python bench/bench_train.py --device cpu --batch 2 --steps 3 --variants ssd
    python bench/bench_train.py --device cuda --batch 32 --set data/sets/hr --variants ssd,shallow,fem,atss,mdssd
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.data.images import write_image  # noqa: E402
from pipeline.data.schema import ImageRecord, images_dir, records_to_table, table_path, write_table  # noqa: E402
from pipeline.detector.data import (  # noqa: E402
    DetectionDataset,
    ResumableSampler,
    auto_num_workers,
    make_loader,
    to_device,
)
from pipeline.detector.model import ModelConfig, build_detector  # noqa: E402
from pipeline.detector.transforms import build_transform  # noqa: E402


def synthetic_set(root: Path, n: int = 64, size: int = 320, classes: int = 3, seed: int = 0) -> Path:
    """A set of ``n`` textured ``size``-px JPEGs with 1-6 small filled boxes each."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        img = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
        k = int(rng.integers(1, 7))
        wh = rng.uniform(8, 48, size=(k, 2))
        xy = rng.uniform(0, size - 48, size=(k, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        labels = rng.integers(0, classes, size=k)
        for (x0, y0, x1, y1), lab in zip(boxes.astype(int), labels, strict=False):
            img[y0:y1, x0:x1] = (60 * lab + 40) % 256
        name = f"{i:05d}.jpg"
        write_image(images_dir(root) / name, img)
        recs.append(ImageRecord(f"{i}", name, "train", size, size, boxes, labels.astype(np.int64),
                                np.zeros(k, bool), np.zeros(k, bool)))
    write_table(table_path(root), records_to_table(recs, [f"c{i}" for i in range(classes)]))
    return root


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, steps: int, warmup: int, device: torch.device, batch: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def bench_data(loader, sampler, device, channels_last: bool, steps: int, warmup: int, batch: int):
    """img/s of the input pipeline alone, and a function yielding further batches (epochs roll over)."""
    state = {"epoch": 0, "it": None}

    def next_batch():
        while True:
            if state["it"] is None:
                sampler.set_epoch(state["epoch"])
                state["it"] = iter(loader)
            try:
                return next(state["it"])
            except StopIteration:
                state["epoch"] += 1
                state["it"] = None

    def step():
        to_device(next_batch(), device, channels_last)

    return _time(step, steps, warmup, device, batch), next_batch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default=None, help="set dir (default: data/sets/hr if present, else a synthetic set)")
    ap.add_argument("--variants", default="ssd")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="default 32 on CUDA, 2 on CPU")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 20 CUDA, 3 CPU)")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--width", type=float, default=1.0, help="our VGG width (1.0 = same as torchvision's)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--skip-torchvision", action="store_true")
    args = ap.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (32 if cuda else 2)
    steps = args.steps or (20 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    workers = auto_num_workers() if args.workers is None else args.workers
    if cuda:
        torch.backends.cudnn.benchmark = True
    tmp = None
    set_dir = Path(args.set) if args.set else Path("data/sets/hr")
    if not (set_dir / "annotations.parquet").is_file():
        tmp = tempfile.TemporaryDirectory()
        set_dir = synthetic_set(Path(tmp.name) / "set", n=max(64, 2 * batch))

    dataset = DetectionDataset(set_dir, "train", build_transform("ssd", 300), seed=0)
    n_cls = len(dataset.classes)
    sampler = ResumableSampler(dataset, seed=0)
    loader = make_loader(dataset, sampler, batch, workers, pin_memory=cuda)
    data_img_s, next_batch = bench_data(loader, sampler, device, cuda, steps, warmup, batch)
    resident = to_device(next_batch(), device, cuda)

    def build(model):
        model = model.to(device)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        fwd = torch.compile(model) if (args.compile and cuda) else model
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        return model, fwd, opt

    results = []
    for variant in args.variants.split(","):
        torch.manual_seed(0)
        model, fwd, opt = build(build_detector(ModelConfig(variant=variant, width=args.width), n_cls))

        def ours(batch_tensors, model=model, fwd=fwd, opt=opt):
            images, boxes, labels = batch_tensors
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                cls, box = fwd(images)
            loss = model.loss(cls.float(), box.float(), boxes, labels)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        model_img_s = _time(lambda: ours(resident), steps, warmup, device, batch)
        e2e_img_s = _time(lambda: ours(to_device(next_batch(), device, cuda)), steps, warmup, device, batch)
        results.append({"variant": variant, "width": args.width, "data_img_s": round(data_img_s, 2),
                        "model_img_s": round(model_img_s, 2), "end_to_end_img_s": round(e2e_img_s, 2),
                        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)})
        del model, fwd, opt

    tv = None
    if not args.skip_torchvision:
        from torchvision.models.detection import ssd300_vgg16

        torch.manual_seed(0)
        tv_model, tv_fwd, tv_opt = build(ssd300_vgg16(weights=None, weights_backbone=None, num_classes=n_cls + 1))
        images, boxes, labels = resident
        tv_images = list(images)  # its own transform normalises and resizes inside
        tv_targets = [{"boxes": b[lab > 0] * 300, "labels": lab[lab > 0]} for b, lab in zip(boxes, labels, strict=False)]

        def tv_step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                losses = tv_fwd(tv_images, tv_targets)
            loss = sum(v.float() for v in losses.values())
            tv_opt.zero_grad(set_to_none=True)
            loss.backward()
            tv_opt.step()

        tv = _time(tv_step, steps, warmup, device, batch)
        for r in results:
            r["torchvision_model_img_s"] = round(tv, 2)
            r["model_vs_torchvision"] = round(r["model_img_s"] / tv, 3)

    print(json.dumps({
        "device": torch.cuda.get_device_name(device) if cuda else f"CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()})",
        "torch": torch.__version__, "batch": batch, "timed_steps": steps, "workers": workers,
        "amp": "bf16" if cuda else "none", "channels_last": cuda, "compile": bool(args.compile and cuda),
        "set": str(set_dir) if tmp is None else "synthetic (64 x 320 px, 1-6 small boxes)",
        "results": results,
    }, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

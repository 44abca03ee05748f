"""End-to-end ``predict`` speed vs torchvision's ``ssd300_vgg16``, and sliced vs unsliced on a large image.

Ours is :func:`pipeline.predict.predict` on a folder of genuine VOC JPEGs (decode, resize,
forward, decode boxes, post-processing, ``detections.json``; pictures off).  torchvision's
``ssd300_vgg16`` (weights=None, weights_backbone=None, score_thresh 0.01) decodes the same
files with the same reader and runs its own transform and postprocess, in the same run.
Both models are randomly initialised (nothing can be downloaded here): scores are then
near-uniform, so both post-processing steps run at their candidate caps — the worst case.
Sliced: one VOC picture upscaled to ``--large`` (default 2400x1800) predicted whole (one
S x S input) and with ``--slice``/``--overlap`` windows batched ``--slice-batch`` at a time.

    python bench/bench_predict.py [--batches 1 32] [--iters 3] [--device auto] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import torch
from torchvision.models.detection import ssd300_vgg16

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import Timing, device_name, time_calls, versions  # noqa: E402
from bench._voc_sample import SHARED, VOC_CLASSES  # noqa: E402
from pipeline.atomic import write_json  # noqa: E402
from pipeline.data.images import read_image, write_image  # noqa: E402
from pipeline.detector.checkpoint import save_detector  # noqa: E402
from pipeline.detector.model import ModelConfig, build_detector  # noqa: E402
from pipeline.evaluation.infer import resolve_device  # noqa: E402
from pipeline.postprocess import PostprocessConfig  # noqa: E402
from pipeline.predict import predict  # noqa: E402
from pipeline.slicing import SliceConfig, windows  # noqa: E402


def voc_jpegs(n: int) -> list[Path]:
    """The first ``n`` genuine VOC2012 sample JPEGs (sorted)."""
    files = sorted((SHARED / "voc" / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))
    if len(files) < n:
        raise FileNotFoundError(f"need {n} VOC sample JPEGs under {SHARED}, found {len(files)}")
    return files[:n]


def ours_runner(ckpt: Path, folder: Path, out: Path, batch: int, device: str, method: str,
                slice_cfg: SliceConfig | None = None) -> Callable[[], object]:
    """One ``predict`` call over ``folder`` (drawing off)."""
    cfg = PostprocessConfig(method=method)
    return lambda: predict(ckpt, [str(folder)], out, cfg, batch_size=batch, device=device, slice_cfg=slice_cfg,
                           pictures=False, progress=False)


def torchvision_runner(files: list[Path], classes: int, dev: torch.device) -> Callable[[], object]:
    """Decode ``files`` with the same reader, then ``ssd300_vgg16`` with its own transform + postprocess."""
    torch.manual_seed(0)
    tv = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=classes + 1, score_thresh=0.01).eval().to(dev)

    @torch.inference_mode()
    def run() -> object:
        images = [torch.from_numpy(read_image(f)).permute(2, 0, 1).to(dev).float() / 255 for f in files]
        return tv(images)

    return run


def row(t: Timing, images: int) -> dict:
    return {"s_per_call": t.s_per_call, "img_per_s": t.rate(images), "first_call_s": t.first_call_s, "calls": t.calls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=600.0, help="time budget per measured configuration")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--width", type=float, default=1.0, help="our VGG width (1.0 = SSD300, like torchvision's)")
    ap.add_argument("--method", default="nms", choices=["nms", "soft_linear", "soft_gaussian"])
    ap.add_argument("--large", default="2400x1800", help="WxH of the large image for sliced vs unsliced")
    ap.add_argument("--slice", type=int, default=300)
    ap.add_argument("--overlap", type=float, default=0.2)
    ap.add_argument("--slice-batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    res: dict = {"device": device_name(dev), "versions": versions(), "method": args.method, "width": args.width,
                 "inputs": "genuine VOC2012 sample JPEGs", "drawing": False, "batches": {}}
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp_name:
        tmp = Path(tmp_name)
        torch.manual_seed(0)
        ckpt = tmp / "model.pt"
        save_detector(ckpt, build_detector(ModelConfig(width=args.width), len(VOC_CLASSES), init_backbone=False),
                      {"classes": VOC_CLASSES})
        for b in args.batches:
            files = voc_jpegs(b)
            folder = tmp / f"batch_{b}"
            folder.mkdir()
            for f in files:
                shutil.copy(f, folder / f.name)
            ours = time_calls(ours_runner(ckpt, folder, tmp / f"out_{b}", b, args.device, args.method), dev,
                              args.iters, budget_s=args.budget_s)
            tv = time_calls(torchvision_runner(files, len(VOC_CLASSES), dev), dev, args.iters, budget_s=args.budget_s)
            res["batches"][f"batch_{b}"] = {"ours_predict": row(ours, b), "torchvision_ssd300_vgg16": row(tv, b),
                                            "ratio_ours_vs_torchvision_img_per_s": ours.rate(b) / tv.rate(b)}
        w, h = (int(v) for v in args.large.split("x"))
        big = tmp / "large"
        big.mkdir()
        write_image(big / "large.jpg", cv2.resize(read_image(voc_jpegs(1)[0]), (w, h), interpolation=cv2.INTER_CUBIC))
        cfg = SliceConfig(size=args.slice, overlap=args.overlap)
        whole = time_calls(ours_runner(ckpt, big, tmp / "out_whole", 1, args.device, args.method), dev,
                           args.iters, budget_s=args.budget_s)
        sliced = time_calls(ours_runner(ckpt, big, tmp / "out_sliced", args.slice_batch, args.device, args.method, cfg),
                            dev, args.iters, budget_s=args.budget_s)
        res["large_image"] = {
            "size": [w, h], "slice": args.slice, "overlap": args.overlap, "merge": cfg.merge,
            "tiles": len(windows(w, h, args.slice, args.overlap)), "tile_batch": args.slice_batch,
            "unsliced_s": whole.s_per_call, "sliced_s": sliced.s_per_call,
            "ratio_sliced_vs_unsliced_time": sliced.s_per_call / whole.s_per_call,
            "first_call_s": {"unsliced": whole.first_call_s, "sliced": sliced.first_call_s},
        }  # fmt: skip
    print(json.dumps(res, indent=2))
    if args.out:
        write_json(args.out, res)


if __name__ == "__main__":
    main()

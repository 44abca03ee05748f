"""SR benchmark: inference throughput (output MP/s), training it/s, and an end-to-end
embedded-like run (SR vs bicubic PSNR/SSIM).  Prints one JSON object naming the device.

The embedded-like data: genuine COCO images from ../shared/data (train2017 -> train,
val2017 -> test), resized to ``--size`` px on the long side with their boxes, and the LR
set by PIL bicubic (antialiased) /4 with ``round(W/4)`` sizes, as the degrade stage.

    python bench/bench_sr.py [--e2e] [--shared ../shared/data] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.sr.config import SRConfig  # noqa: E402
from pipeline.sr.infer import super_resolve  # noqa: E402
from pipeline.sr.models import build_generator  # noqa: E402


def build_coco_like(root: Path, shared: Path, size: int, n_train: int, n_test: int, scale: int = 4) -> tuple[Path, Path]:
    """HR and LR sets from the genuine COCO samples (boxes kept, crowd and tiny ones dropped)."""
    from pipeline.data.degrade import lr_size  # pyarrow, cv2: not needed by infer_throughput
    from pipeline.data.images import write_image
    from pipeline.data.schema import ImageRecord, images_dir, records_to_table, table_path, write_table

    hr_recs, lr_recs, classes = [], [], None
    for split, sub, n in (("train", "train2017", n_train), ("test", "val2017", n_test)):
        ann = json.loads((shared / "coco" / "annotations" / f"instances_{sub}.json").read_text())
        cats = sorted(ann["categories"], key=lambda c: c["id"])
        classes = classes or [c["name"] for c in cats]
        cat_index = {c["id"]: i for i, c in enumerate(cats)}
        by_img: dict[int, list] = {}
        for a in ann["annotations"]:
            by_img.setdefault(a["image_id"], []).append(a)
        for info in sorted(ann["images"], key=lambda i: i["id"])[:n]:
            img = Image.open(shared / "coco" / sub / info["file_name"]).convert("RGB")
            f = size / max(img.size)
            w, h = max(1, round(img.size[0] * f)), max(1, round(img.size[1] * f))
            hr = img.resize((w, h), Image.Resampling.BICUBIC)
            lw, lh = lr_size(w, h, scale)
            lr = hr.resize((lw, lh), Image.Resampling.BICUBIC)
            boxes, labels = [], []
            for a in by_img.get(info["id"], []):
                x, y, bw, bh = (v * f for v in a["bbox"])
                if a.get("iscrowd") or bw < 1 or bh < 1:
                    continue
                boxes.append([x, y, min(x + bw, w), min(y + bh, h)])
                labels.append(cat_index[a["category_id"]])
            name = f"{split}/{info['file_name'].replace('.jpg', '.png')}"
            b = np.asarray(boxes, np.float32).reshape(-1, 4)
            kw = dict(labels=np.asarray(labels, np.int64), difficult=np.zeros(len(labels), bool),
                      iscrowd=np.zeros(len(labels), bool))
            iid = f"{sub}_{info['id']}"
            hr_recs.append(ImageRecord(iid, name, split, w, h, boxes=b, **kw))
            lr_recs.append(ImageRecord(iid, name, split, lw, lh, boxes=np.minimum(b * np.array([lw / w, lh / h] * 2, np.float32),
                                                                      np.array([lw, lh] * 2, np.float32)), **kw))
            write_image(images_dir(root / "hr") / name, np.asarray(hr))
            write_image(images_dir(root / "lr") / name, np.asarray(lr))
    write_table(table_path(root / "hr"), records_to_table(hr_recs, classes))
    write_table(table_path(root / "lr"), records_to_table(lr_recs, classes))
    return root / "hr", root / "lr"


def infer_throughput(num_feat: int, num_block: int, device: str, lr_hw: tuple[int, int], n: int,
                     tile: int, batch: int, amp_dtype: torch.dtype | None = None) -> dict:
    """Output MP/s of tiled x4 inference of ``n`` random ``lr_hw`` images (after a 2-image warm-up)."""
    torch.manual_seed(0)
    model = build_generator(num_feat, num_block, 4)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (*lr_hw, 3), dtype=np.uint8) for _ in range(n)]
    list(super_resolve(model, imgs[:2], tile=tile, overlap=16, batch_size=batch, device=device, amp_dtype=amp_dtype))  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    outs = list(super_resolve(model, imgs, tile=tile, overlap=16, batch_size=batch, device=device, amp_dtype=amp_dtype))
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    mp = sum(o.shape[0] * o.shape[1] for o in outs) / 1e6  # (H, W, 3) uint8 outputs
    return {"model": f"MSRResNet f{num_feat} b{num_block}", "lr_size": list(lr_hw), "images": n,
            "tile": tile, "batch": batch, "seconds": round(dt, 3), "out_mp_per_s": round(mp / dt, 3)}


def train_speed(cfg: SRConfig, hr: Path, lr: Path, iters: int, device: str) -> dict:
    from dataclasses import replace

    from pipeline.sr.train import train_sr

    c = replace(cfg, train=replace(cfg.train, pretrain_iters=iters, gan_iters=0, checkpoint_every=10**9))
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        train_sr(hr, lr, out, c, seed=0, device=device)
        dt = time.perf_counter() - t0
    return {"model": f"MSRResNet f{c.model.num_feat} b{c.model.num_block}", "iters": iters,
            "batch": c.train.batch_size, "patch_lr": c.train.patch_size, "seconds_incl_setup": round(dt, 2),
            "it_per_s": round(iters / dt, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--e2e", action="store_true", help="also run train+infer on embedded-like data")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=60)
    ap.add_argument("--n-infer", type=int, default=8)
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    dev = args.device
    name = torch.cuda.get_device_name(0) if dev == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    cfg = SRConfig()
    res: dict = {"device": name, "torch": torch.__version__, "inference": [], "training": []}
    for nf, nb in () if args.skip_throughput else ((cfg.model.num_feat, cfg.model.num_block), (64, 16)):
        res["inference"].append(infer_throughput(nf, nb, dev, (80, 107), args.n_infer, 128, 8))
        res["inference"].append(infer_throughput(nf, nb, dev, (375, 500), max(1, args.n_infer // 4), 128, 8))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        hr, lr = build_coco_like(Path(tmp), args.shared, args.size, args.n_train, args.n_test)
        res["data"] = {"train": args.n_train, "test": args.n_test, "size": args.size,
                       "build_s": round(time.perf_counter() - t0, 1)}
        res["training"].append(train_speed(cfg, hr, lr, 50, dev))
        if args.e2e:
            from pipeline.sr.sets import make_sr_sets
            from pipeline.sr.train import train_sr

            t0 = time.perf_counter()
            train_sr(hr, lr, Path(tmp) / "model", cfg, seed=0, device=dev)
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            rep = make_sr_sets(lr, hr, {"sr": (Path(tmp) / "model" / "generator.pth", Path(tmp) / "sr")},
                               Path(tmp) / "bic", None, Path(tmp) / "fig.png", cfg.infer, device=dev)
            res["e2e"] = {"config": "embedded default (params sr: {})", "train_s": round(t_train, 1),
                          "infer_s": round(time.perf_counter() - t0, 1), **rep.to_metrics()}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

"""Peak memory of the super-resolve stage on one large image: 4, 25 and 100 megapixel outputs.

Each size runs :func:`pipeline.sr.sets.make_sr_sets` (SR x4 by tiles, bicubic baseline,
PSNR/SSIM against the HR image, figure crop, both sets encoded) on a one-image set, in its
own subprocess, and reads that process's peak RSS (``ru_maxrss``).  Prints one JSON object
(also written to ``--out``): per size the peak, the RSS before the stage (Python, torch,
the model) and the seconds; the slope of the peak in MB per output megapixel (least
squares) and the peak it predicts for a 20,000 x 20,000 (400 MP) output.

The generator is an untrained MSRResNet with ``num_feat 8, num_block 1`` (memory, not
quality, is measured; the network's cost per tile is what it is).  The synthetic scene is
a smooth pattern with noise; the HR image is its LR upscaled, so PNG sizes are realistic.

    python bench/bench_sr_memory.py [--sizes 4 25 100] [--format png|jpg] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.data.bandwriter import write_image_bands  # noqa: E402
from pipeline.data.schema import ImageRecord, images_dir, records_to_table, table_path, write_table  # noqa: E402
from pipeline.sr.infer import bicubic_bands  # noqa: E402

SCALE = 4


def _lr_bands(w: int, h: int, rows: int = 256) -> Iterator[np.ndarray]:
    """A smooth LR scene with noise, generated band by band."""
    rng = np.random.default_rng(0)
    x = np.arange(w)[None, :]
    for y0 in range(0, h, rows):
        y = np.arange(y0, min(h, y0 + rows))[:, None]
        base = np.stack([128 + 100 * np.sin(x / 37 + y / 53), 128 + 90 * np.cos(x / 23 - y / 41),
                         (x + 2 * y) % 256 + 0 * y], -1)
        yield np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def build_scene(root: Path, mp: float, fmt: str) -> tuple[Path, Path, Path]:
    """A one-image HR/LR set pair (split test, one small box) and the generator file."""
    import torch

    from pipeline.sr.models import build_generator

    lw = lh = round(math.sqrt(mp * 1e6) / SCALE)
    w, h = SCALE * lw, SCALE * lh
    name = f"scene.{fmt}"
    lr = np.concatenate(list(_lr_bands(lw, lh)))
    write_image_bands(images_dir(root / "lr") / name, (lw, lh), iter([lr]), png_level=1)
    write_image_bands(images_dir(root / "hr") / name, (w, h), bicubic_bands(lr, (w, h)), png_level=1)
    for sub, (iw, ih), k in (("hr", (w, h), 1), ("lr", (lw, lh), 1 / SCALE)):
        box = np.array([[100, 120, 112, 130]], np.float32) * k
        rec = ImageRecord("scene", name, "test", iw, ih, box, np.zeros(1, np.int64), np.zeros(1, bool), np.zeros(1, bool))
        write_table(table_path(root / sub), records_to_table([rec], ["object"]))
    torch.manual_seed(0)
    torch.save({"params": build_generator(num_feat=8, num_block=1, scale=SCALE).state_dict()}, root / "g.pth")
    return root / "hr", root / "lr", root / "g.pth"


def child(root: Path) -> dict:
    """Run the stage on the set under ``root``; peak RSS of this process."""
    import psutil
    import torch

    from pipeline.sr.config import SRInferConfig
    from pipeline.sr.sets import make_sr_sets
    from pipeline.sr.weights import load_generator

    torch.set_num_threads(2)
    load_generator(root / "g.pth")  # the imports and a model: the baseline
    before = psutil.Process().memory_info().rss / 2**20
    t0 = time.perf_counter()
    cfg = SRInferConfig(splits=["test"], figure_crops=1)
    report = make_sr_sets(root / "lr", root / "hr", {"sr": (root / "g.pth", root / "sr")}, root / "bicubic",
                          root / "q.json", root / "fig.png", cfg, device="cpu")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_rss_mb": round(peak, 1), "rss_before_mb": round(before, 1), "seconds": round(seconds, 1),
            "sr_psnr": _finite(report.sr_psnr), "bicubic_psnr": _finite(report.bicubic_psnr)}


def _finite(x: float) -> float | None:
    """Rounded, or None for inf (strict JSON; the bicubic baseline equals this scene's HR)."""
    return round(x, 3) if math.isfinite(x) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[4, 25, 100], help="output megapixels")
    ap.add_argument("--format", choices=["png", "jpg"], default="png", help="image format of the set")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    runs = []
    for mp in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            build_scene(Path(tmp), mp, args.format)
            side = SCALE * round(math.sqrt(mp * 1e6) / SCALE)
            proc = subprocess.run([sys.executable, __file__, "--child", tmp], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"{mp} MP run failed:\n{proc.stderr[-3000:]}")
            run = {"output_mp": round(side * side / 1e6, 2), "side_px": side, **json.loads(proc.stdout.splitlines()[-1])}
            runs.append(run)
            print(json.dumps(run), file=sys.stderr)
    x = np.array([r["output_mp"] for r in runs])
    y = np.array([r["peak_rss_mb"] for r in runs])
    slope, intercept = np.polyfit(x, y, 1) if len(runs) > 1 else (float("nan"), float("nan"))
    result = {"format": args.format, "model": "MSRResNet num_feat 8 num_block 1 (untrained), x4, tile 128/32",
              "runs": runs, "slope_mb_per_mp": round(float(slope), 2), "intercept_mb": round(float(intercept), 1),
              "predicted_peak_mb_400mp": round(float(intercept + 400 * slope), 1)}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

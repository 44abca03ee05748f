"""Throughput of copy-paste augmentation with 1 worker vs all cores. Prints JSON.

Usage: PYTHONPATH=. python bench/bench_copy_paste.py [--set DIR] [--repeats 3]
Default set: the genuine VOC2012 sample of ../shared/data (built in a temp dir).
Two settings: the default params (probability 0.5, same-image sources) and a heavy
one (probability 1, 2 copies, 4 cross-image objects, Gaussian blending).
Timings include pool start-up and the patch bank (end-to-end stage cost).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from _voc_sample import voc_sample_set

from pipeline.augment.copy_paste import CopyPasteConfig, copy_paste_set
from pipeline.data.schema import read_records
from pipeline.parallel import resolve_workers

SETTINGS = {
    "default": CopyPasteConfig(),
    "heavy": CopyPasteConfig(probability=1.0, copies_per_object=2, cross_image_objects=4, blend="gaussian"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--replicate", type=int, default=8, help="repeat the 100-image VOC sample this many times")
    args = ap.parse_args()
    cores = resolve_workers(0)
    out = {"benchmark": "copy_paste", "device": f"CPU, {cores} cores", "load_average_1min_before": round(os.getloadavg()[0], 2), "results": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        s = args.set or voc_sample_set(tmp / f"voc2012_sample_x{args.replicate}", replicate=args.replicate)
        n = len(read_records(s)[0])
        for name, cfg in SETTINGS.items():
            row: dict[str, object] = {"set": s.name, "setting": name, "images": n}
            times = {}
            for workers in (1, 0):
                runs = []
                for i in range(args.repeats):
                    t0 = time.perf_counter()
                    metrics, _ = copy_paste_set(s, tmp / f"cp_{name}_{workers}_{i}", replace(cfg, workers=workers), seed=0, progress=False)
                    runs.append(time.perf_counter() - t0)
                times[workers] = statistics.median(runs)
            row.update({
                "pastes": metrics["pastes"], "images_augmented": metrics["images_augmented"],
                "workers_1_images_per_s": round(n / times[1], 1),
                f"workers_{cores}_images_per_s": round(n / times[0], 1),
                "speedup_vs_workers_1": round(times[1] / times[0], 2),
            })
            out["results"].append(row)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

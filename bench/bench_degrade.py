"""Throughput of the degrade stage (HR -> LR, x4 bicubic) with 1 worker vs all cores. Prints JSON.

Usage: PYTHONPATH=. python bench/bench_degrade.py [--set DIR ...] [--repeats 3]
Default sets: the genuine VOC2012 sample of ../shared/data (built in a temp dir) and
data/sets/hr when it exists. Timings include pool start-up (end-to-end stage cost).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _voc_sample import REPO, voc_sample_set

from pipeline.data.degrade import DegradeConfig, degrade_set
from pipeline.data.schema import read_records
from pipeline.parallel import resolve_workers


def _time(set_dir: Path, cfg: DegradeConfig, repeats: int, tmp: Path) -> float:
    runs = []
    for i in range(repeats):
        t0 = time.perf_counter()
        degrade_set(set_dir, tmp / f"lr_{cfg.workers}_{i}", cfg, progress=False)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", action="append", type=Path, default=[])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--replicate", type=int, default=8, help="repeat the 100-image VOC sample this many times")
    ap.add_argument("--scale", type=float, default=4.0)
    args = ap.parse_args()
    cores = resolve_workers(0)
    out = {"benchmark": "degrade", "device": f"CPU, {cores} cores", "load_average_1min_before": round(os.getloadavg()[0], 2), "scale": args.scale, "kernel": "bicubic", "sets": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sets = list(args.set)
        if not sets:
            sets.append(voc_sample_set(tmp / f"voc2012_sample_x{args.replicate}", replicate=args.replicate))
            if (REPO / "data" / "sets" / "hr" / "annotations.parquet").is_file():
                sets.append(REPO / "data" / "sets" / "hr")
        for s in sets:
            recs, _ = read_records(s)
            mpx = sum(r.width * r.height for r in recs) / len(recs) / 1e6
            t1 = _time(s, DegradeConfig(scale=args.scale, workers=1), args.repeats, tmp)
            tn = _time(s, DegradeConfig(scale=args.scale, workers=0), args.repeats, tmp)
            out["sets"].append({
                "set": str(s.name), "images": len(recs), "mean_megapixels": round(mpx, 3),
                "workers_1_images_per_s": round(len(recs) / t1, 1),
                f"workers_{cores}_images_per_s": round(len(recs) / tn, 1),
                "speedup_vs_workers_1": round(t1 / tn, 2),
            })
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

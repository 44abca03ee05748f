"""Ingest throughput (images/s, objects/s) on the embedded set and the genuine VOC/COCO samples.

Prints one JSON object. Each dataset is ingested with full decoding (the default,
``verify_images: decode``) and with header-only checks; ``decode_vs_header`` is the
ratio of the two times in this process (the reference run).  Usage::

    python bench/bench_ingest.py [--shared ../shared/data] [--repeats 3]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.data.ingest import IngestConfig, ingest  # noqa: E402
from pipeline.data.sources import DataConfig, fetch  # noqa: E402


def _time_ingest(raw: Path, work: Path, cfg: IngestConfig, repeats: int) -> tuple[float, dict]:
    best, report = float("inf"), {}
    for k in range(repeats):
        t0 = time.perf_counter()
        report = ingest(raw, work / f"set{k}", cfg, progress=False)
        best = min(best, time.perf_counter() - t0)
    return best, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8))
    args = parser.parse_args()

    sources = {"embedded": DataConfig()}
    if args.shared.is_dir():
        voc = args.shared / "voc/VOCdevkit"
        sources["voc2007_local"] = DataConfig(source="local", local_path=str(voc),
                                              local_train=("VOC2007/trainval",), local_test=("VOC2007/test",))
        sources["voc2012_local"] = DataConfig(source="local", local_path=str(voc / "VOC2012"),
                                              local_train=("trainval",), local_test=())
        sources["coco2017_local"] = DataConfig(source="local", local_path=str(args.shared / "coco"),
                                               local_format="coco")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, dcfg in sources.items():
            raw = Path(tmp) / name / "raw"
            t0 = time.perf_counter()
            fetch(dcfg, 0, raw, progress=False)
            fetch_s = time.perf_counter() - t0
            row = {"fetch_s": round(fetch_s, 3)}
            for mode in ("decode", "header"):
                cfg = IngestConfig(verify_images=mode, workers=args.workers)
                secs, report = _time_ingest(raw, Path(tmp) / name / mode, cfg, args.repeats)
                n_img = sum(c["images"] for c in report["counts"].values())
                n_obj = sum(c["objects"] for c in report["counts"].values())
                row[mode] = {"seconds": round(secs, 4), "images": n_img, "objects": n_obj,
                             "images_per_s": round(n_img / secs, 1), "objects_per_s": round(n_obj / secs, 1)}
            row["decode_vs_header"] = round(row["decode"]["seconds"] / row["header"]["seconds"], 2)
            results[name] = row
    print(json.dumps({
        "benchmark": "ingest",
        "device": f"CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()})",
        "workers": args.workers,
        "repeats_best_of": args.repeats,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()

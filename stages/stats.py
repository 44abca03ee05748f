"""DVC stage `stats`: per-class object-size statistics of a set (METHODS.md §1)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.atomic import write_json  # noqa: E402
from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section  # noqa: E402
from pipeline.data.schema import read_records  # noqa: E402
from pipeline.data.stats import (  # noqa: E402
    PER_CLASS_COLUMNS,
    StatsConfig,
    compute_stats,
    histogram_rows,
    per_class_rows,
    size_histogram_png,
    to_metrics,
    write_csv,
)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", required=True, type=Path, help="set directory (images/ + annotations.parquet)")
    ap.add_argument("--metrics", required=True, type=Path, help="metrics JSON to write")
    ap.add_argument("--plots", required=True, type=Path, help="directory for plot CSVs")
    ap.add_argument("--figure", required=True, type=Path, help="histogram PNG to write")
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)

    cfg = section(load_params(args.params), "stats", StatsConfig)
    records, classes = read_records(args.set)
    stats = compute_stats(records, classes, cfg)
    write_csv(args.plots / "size_histogram.csv", histogram_rows(stats), ("sqrt_area", "count"))
    write_csv(args.plots / "per_class.csv", per_class_rows(stats), PER_CLASS_COLUMNS)
    size_histogram_png(args.figure, stats, title=f"{args.set.name}: object size ({stats.size_measure})")
    write_json(args.metrics, to_metrics(stats, cfg))
    o = stats.overall
    print(
        f"{args.set}: {o['images']} images, {o['instances']} instances "
        f"(small {o.get('small_share', 0):.1%} by {stats.size_measure}), {o['difficult']} difficult, {o['crowd']} crowd"
    )


if __name__ == "__main__":
    run_cli(main)

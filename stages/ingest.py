"""DVC stage ``ingest``: build the HR set (images + annotations.parquet) and its report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section  # noqa: E402
from pipeline.data.ingest import IngestConfig, ingest  # noqa: E402
from pipeline.runlock import output_lock  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", required=True, type=Path, help="fetched source (data/raw)")
    parser.add_argument("--out", required=True, type=Path, help="HR set folder (data/sets/hr)")
    parser.add_argument("--report", required=True, type=Path, help="ingest report JSON")
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    cfg = section(load_params(args.params), "ingest", IngestConfig)
    with output_lock(args.out, "ingest"):
        report = ingest(args.raw, args.out, cfg, report_path=args.report)
    c = report["counts"]
    print(f"ingest: train {c['train']['images']} images / {c['train']['objects']} objects, "
          f"test {c['test']['images']} / {c['test']['objects']}, skipped {len(report['skipped'])} record(s); "
          f"sizes by {report['size_measure']}")


if __name__ == "__main__":
    run_cli(main)

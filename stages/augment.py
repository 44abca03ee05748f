"""DVC stage `augment`: copy-paste small objects into training images (Kisantal et al. 2019)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.atomic import write_json  # noqa: E402
from pipeline.augment.copy_paste import CopyPasteConfig, copy_paste_set, examples_figure  # noqa: E402
from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section, seed  # noqa: E402
from pipeline.data.schema import read_records  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input", required=True, type=Path, help="set directory to augment (train split)")
    ap.add_argument("--output", required=True, type=Path, help="augmented set directory to (re)write")
    ap.add_argument("--metrics", required=True, type=Path, help="metrics JSON to write")
    ap.add_argument("--figure", required=True, type=Path, help="PNG of augmented examples")
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)

    params = load_params(args.params)
    cfg = section(params, "augment", CopyPasteConfig)
    metrics, pairs = copy_paste_set(args.input, args.output, cfg, seed(params))
    examples_figure(args.figure, args.output, pairs, fallback=read_records(args.output, "train")[0])
    write_json(args.metrics, metrics)
    print(
        f"{args.output}: {metrics['images_augmented']}/{metrics['train_images']} train images augmented, "
        f"{metrics['pastes']} pastes ({metrics['failed_placements']} found no free place), small instances "
        f"{metrics['small_instances_before']} -> {metrics['small_instances_after']}"
    )


if __name__ == "__main__":
    run_cli(main)

"""DVC stage `degrade`: the LR set (every image downsampled by `degrade.scale`, boxes scaled)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section  # noqa: E402
from pipeline.data.degrade import DegradeConfig, degrade_set  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input", required=True, type=Path, help="HR set directory")
    ap.add_argument("--output", required=True, type=Path, help="LR set directory to (re)write")
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)

    cfg = section(load_params(args.params), "degrade", DegradeConfig)
    summary = degrade_set(args.input, args.output, cfg)
    print(
        f"{args.output}: {summary['images']} images x1/{cfg.scale:g} ({cfg.kernel}, antialias={cfg.antialias}), "
        f"{summary['objects']} objects, {summary['sub_pixel_objects']} narrower than 1 px"
    )


if __name__ == "__main__":
    run_cli(main)

"""DVC stage: SR (SRResNet), SRGAN and bicubic sets from the LR set, PSNR/SSIM metrics, side-by-side figure."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section  # noqa: E402
from pipeline.sr.config import SRConfig  # noqa: E402
from pipeline.sr.sets import make_sr_sets  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lr", required=True, help="LR set directory")
    ap.add_argument("--hr", required=True, help="HR set directory (annotations, sizes, quality reference)")
    ap.add_argument("--model", required=True, help="generator weights (ours or basicsr's MSRResNet .pth)")
    ap.add_argument("--sr-out", required=True)
    ap.add_argument("--srgan-model", help="SRGAN generator weights (stage srgan_train); with --srgan-out")
    ap.add_argument("--srgan-out", help="SRGAN set directory")
    ap.add_argument("--bicubic-out", required=True)
    ap.add_argument("--metrics", required=True, help="PSNR/SSIM JSON")
    ap.add_argument("--figure", required=True, help="side-by-side PNG")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    if (args.srgan_model is None) != (args.srgan_out is None):
        ap.error("--srgan-model and --srgan-out go together")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = section(load_params(args.params), "sr", SRConfig)
    generators = {"sr": (args.model, args.sr_out)}
    if args.srgan_model is not None:
        generators["srgan"] = (args.srgan_model, args.srgan_out)
    make_sr_sets(args.lr, args.hr, generators, args.bicubic_out, args.metrics, args.figure, cfg.infer)


if __name__ == "__main__":
    run_cli(main)

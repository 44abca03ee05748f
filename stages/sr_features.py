"""DVC stage: train the detector whose trunk features are the SRGAN phase's content loss, on the HR set only
(so the SR sets never depend on the main detector, which may train on them); resumes from checkpoints."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section, seed  # noqa: E402
from pipeline.detector.model import ModelConfig  # noqa: E402
from pipeline.sr.config import SRConfig  # noqa: E402
from pipeline.sr.features import train_feature_detector  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hr", required=True, help="HR set directory (its train split)")
    ap.add_argument("--out", required=True, help="output dir: model.pt, checkpoints/, dvclive/")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when available)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    cfg = section(params, "sr", SRConfig)
    path = train_feature_detector(args.hr, args.out, section(params, "model", ModelConfig), cfg.perceptual,
                                  seed=seed(params), device=args.device)
    logging.getLogger("sr_features").info("wrote %s", path)


if __name__ == "__main__":
    run_cli(main)

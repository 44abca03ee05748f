"""DVC stage: the SRGAN phase (perceptual + adversarial) from the pixel-phase generator, content loss on the
feature detector's trunk (or ImageNet VGG19 when sr.train.vgg19_weights is set); resumes from checkpoints."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section, seed  # noqa: E402
from pipeline.sr.config import SRConfig  # noqa: E402
from pipeline.sr.train import train_srgan  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hr", required=True, help="HR set directory")
    ap.add_argument("--lr", required=True, help="LR set directory (same images, downscaled)")
    ap.add_argument("--generator", required=True, help="the pixel-phase generator.pth to start from")
    ap.add_argument("--features", required=True, help="the feature detector's model.pt (stage sr_features)")
    ap.add_argument("--out", required=True, help="output dir: generator.pth, checkpoints/, loss_log.csv")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    cfg = section(params, "sr", SRConfig)
    result = train_srgan(args.hr, args.lr, args.generator, args.features, args.out, cfg, seed=seed(params))
    logging.getLogger("srgan_train").info("wrote %s after %d GAN steps", result.generator, result.steps)


if __name__ == "__main__":
    run_cli(main)

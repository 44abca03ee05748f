"""DVC stage: train the configured SSD variant (Prefect flow ``train``).

    python stages/train.py --train-set data/sets/hr --out data/models/detector

Resumes from ``<out>/checkpoints/last.pt`` after an interruption.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section  # noqa: E402
from pipeline.curves import training_curves  # noqa: E402
from pipeline.data.schema import read_records  # noqa: E402
from pipeline.detector.model import ModelConfig  # noqa: E402
from pipeline.detector.train import METRICS_DIR, TrainConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-set", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when available)")
    parser.add_argument("--curves", default=None, help="PNG of the loss and LR curves (from <out>/dvclive)")
    args = parser.parse_args(argv)
    params = load_params(args.params)  # a bad param fails here in one line, before a flow run starts
    section(params, "model", ModelConfig)
    section(params, "train", TrainConfig)
    read_records(args.train_set)  # a missing or unreadable train set fails in one line, before a flow run starts
    # Prefect loads only now that the params and the set are known to be good
    from pipeline.flows.train import train_flow
    print(train_flow(train_set=args.train_set, out=args.out, params_file=args.params, device=args.device))
    if args.curves:
        training_curves(Path(args.out) / METRICS_DIR, args.curves)
    return 0


if __name__ == "__main__":
    run_cli(main)

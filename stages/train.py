"""DVC stage: train the configured SSD variant (Prefect flow ``train``).

    python stages/train.py --train-set data/sets/hr --out data/models/detector

Resumes from ``<out>/checkpoints/last.pt`` after an interruption.
"""

from __future__ import annotations

import argparse

from pipeline.flows.train import train_flow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-set", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when available)")
    args = parser.parse_args(argv)
    print(train_flow(train_set=args.train_set, out=args.out, params_file=args.params, device=args.device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

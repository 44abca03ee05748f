"""DVC stage: evaluate the trained detector on the LR/SR/bicubic/HR test sets (Prefect flow ``evaluate``).

    python stages/evaluate.py --checkpoint data/models/detector/model.pt \\
        --set hr=data/sets/hr --set lr=data/sets/lr --reference data/sets/hr --out data/eval
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section  # noqa: E402
from pipeline.detector.model import ModelConfig  # noqa: E402
from pipeline.evaluation.config import EvaluateConfig  # noqa: E402
from pipeline.evaluation.infer import check_evaluation_inputs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--set", action="append", required=True, metavar="NAME=DIR", dest="sets")
    parser.add_argument("--reference", required=True, help="HR set whose ground truth and frame are scored in")
    parser.add_argument("--out", required=True)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)  # a bad param fails here in one line, before a flow run starts
    model_cfg = section(params, "model", ModelConfig)
    section(params, "evaluate", EvaluateConfig)
    sets = {}
    for item in args.sets:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--set expects NAME=DIR, got {item!r}")
        sets[name] = path
    # missing sets, another class list, a checkpoint of another model: one line, before a flow run starts
    check_evaluation_inputs(args.checkpoint, sets, args.reference, model_cfg)
    # Prefect loads only now that the params and inputs are known to be good
    from pipeline.flows.evaluate import evaluate_flow
    metrics = evaluate_flow(checkpoint=args.checkpoint, sets=sets, reference=args.reference, out=args.out,
                            params_file=args.params)
    for key in sorted(k for k in metrics if k.endswith(".map")):
        print(f"{key:28s} {metrics[key]:.4f}")
    return 0


if __name__ == "__main__":
    run_cli(main)

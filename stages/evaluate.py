"""DVC stage: evaluate the trained detector on the LR/SR/bicubic/HR test sets (Prefect flow ``evaluate``).

    python stages/evaluate.py --checkpoint data/models/detector/model.pt \\
        --set hr=data/sets/hr --set lr=data/sets/lr --reference data/sets/hr --out data/eval \\
        [--sr-quality data/metrics/sr_quality.json] [--train-metrics data/models/detector/dvclive/metrics.json] \\
        [--figure data/figures/sr_side_by_side.png ...]

Writes the full matrix (metrics.json), the headline summary.json that DVC shows by default,
report.md / report.html, and prints the sets × methods mAP@0.5 table at the end.
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
from pipeline.evaluation.summary import check_inputs, check_summary_sets, read_json_input  # noqa: E402
from pipeline.evaluation.tables import sets_by_methods, text_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--set", action="append", required=True, metavar="NAME=DIR", dest="sets")
    parser.add_argument("--reference", required=True, help="HR set whose ground truth and frame are scored in")
    parser.add_argument("--out", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--sr-quality", help="sr_quality.json: its PSNR gain goes into summary.json")
    parser.add_argument("--train-metrics", help="the training dvclive metrics.json: final loss and img/s")
    parser.add_argument("--figure", action="append", default=[], help="an extra figure for the report")
    args = parser.parse_args(argv)
    params = load_params(args.params)  # a bad param fails here in one line, before a flow run starts
    model_cfg = section(params, "model", ModelConfig)
    eval_cfg = section(params, "evaluate", EvaluateConfig)
    sets = {}
    for item in args.sets:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--set expects NAME=DIR, got {item!r}")
        sets[name] = path
    # missing sets, another class list, a checkpoint of another model: one line, before a flow run starts
    check_evaluation_inputs(args.checkpoint, sets, args.reference, model_cfg)
    check_summary_sets(eval_cfg, sets)
    check_inputs(read_json_input(args.sr_quality, "SR quality") if args.sr_quality else None,
                 read_json_input(args.train_metrics, "training metrics") if args.train_metrics else None,
                 (str(args.sr_quality), str(args.train_metrics)))
    for fig in args.figure:
        if not Path(fig).is_file():
            parser.error(f"--figure {fig}: file not found")
    # Prefect loads only now that the params and inputs are known to be good
    from pipeline.flows.evaluate import evaluate_flow
    metrics = evaluate_flow(checkpoint=args.checkpoint, sets=sets, reference=args.reference, out=args.out,
                            params_file=args.params, sr_quality=args.sr_quality,
                            train_metrics=args.train_metrics, figures=args.figure)
    print(f"\nmAP@0.5 (VOC all-point), sets × methods:\n{text_table(*sets_by_methods(metrics, 'map', list(sets)))}")
    print(f"\nreport: {Path(args.out) / 'report.md'} (and .html); headline: dvc metrics show; "
          f"full matrix: python -m pipeline.evaluation.show {Path(args.out) / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    run_cli(main)

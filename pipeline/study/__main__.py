"""``python -m pipeline.study``: run the variant × seed grid as DVC experiments and report its effects.

    python -m pipeline.study --variants ssd shallow fem atss mdssd --seeds 3 [-S key=value ...]
    python -m pipeline.study --variants ssd shallow --seeds 2 --report-only   # re-read finished runs
    python -m pipeline.study --variants shallow shallow@model.small_iou_threshold=0.5 --seeds 3   # a param as an arm

Run it in a clone whose baseline (``dvc repro``) is committed: the queue bases every run on HEAD.
Runs that already finished on HEAD with the same params are kept, so after an interruption (or a
failed run) the same command resumes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.cli import run_cli
from pipeline.config import load_params
from pipeline.errors import PipelineError
from pipeline.presets import check_key, parse_override
from pipeline.study.cost import estimate
from pipeline.study.effects import Effect, RunResult, study_effects
from pipeline.study.grid import (
    BOOTSTRAP_FILE,
    finished_cells,
    grid,
    read_json_at,
    require_clean_workspace,
    split_variant,
)
from pipeline.study.queue import queue_and_run
from pipeline.study.report import write_study


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipeline.study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["ssd", "shallow", "fem", "atss", "mdssd"],
                   help="model.variant values, each optionally with its own params after '@' "
                        "(shallow@model.small_iou_threshold=0.5); the first is the baseline of "
                        "'variant − baseline' effects")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per variant (train.seed = 0..N-1)")
    p.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                   help="params.yaml override passed to every run (dvc exp run -S)")
    p.add_argument("--prefix", default="study", help="experiment name prefix")
    p.add_argument("--jobs", type=int, default=1, help="experiments run at once (dvc exp run --jobs)")
    p.add_argument("--out", type=Path, default=Path("data/study"), help="report folder")
    p.add_argument("--report-only", action="store_true", help="do not run; report the finished runs")
    p.add_argument("--baseline", default="HEAD",
                   help="with --report-only: the commit the runs were based on (default HEAD)")
    p.add_argument("--repo", type=Path, default=Path("."), help="the DVC project (default: here)")
    return p.parse_args(argv)


def collect(root: Path, cells, extra, baseline: str = "HEAD") -> list[RunResult]:  # noqa: ANN001
    refs = finished_cells(root, cells, extra, baseline)
    missing = [c.name for c in cells if c.name not in refs]
    if missing:
        raise PipelineError(f"no finished experiment named {missing[0]!r} on {baseline} ({len(missing)} of "
                            f"{len(cells)} runs missing; see `dvc queue status`, `dvc exp show`, --baseline)")
    return [RunResult(c.name, c.variant, c.seed, read_json_at(root, refs[c.name], BOOTSTRAP_FILE, f"run {c.name}"))
            for c in cells]


@dataclass(frozen=True)
class StudyOutcome:
    """What one study invocation produced: its effects and the report's Markdown."""

    effects: list[Effect]
    markdown: str


def run_study(argv: list[str] | None = None) -> StudyOutcome:
    """Queue and run the grid (unless ``--report-only``), then write and return the study report."""
    args = parse_args(argv)
    root = args.repo.resolve()
    params = load_params(root / "params.yaml")
    own = [o for v in args.variants for o in split_variant(v)[1]]
    for o in [*own, *args.set_param]:  # a typo'd key is one line before anything is queued, as for presets
        check_key(params, parse_override(o)[0])
    if args.baseline != "HEAD" and not args.report_only:
        raise PipelineError("--baseline reads finished runs of another commit: use it with --report-only")
    cells = grid(args.variants, args.seeds, args.prefix)
    print(f"study: {len(cells)} runs ({len(args.variants)} variants × {args.seeds} seeds); each re-runs "
          "`train` and `evaluate` only", flush=True)
    wall = None
    if not args.report_only:
        require_clean_workspace(root)
        left = len(cells) - len(finished_cells(root, cells, args.set_param))
        print(estimate(root, left, args.set_param), flush=True)
        start = time.monotonic()
        queue_and_run(root, cells, args.set_param, args.jobs)
        wall = time.monotonic() - start
    runs = collect(root, cells, args.set_param, args.baseline if args.report_only else "HEAD")
    effects = study_effects(runs, baseline=args.variants[0])
    method = runs[0].bootstrap.get("methods", {}).get("nms", "nms")  # the runs' hard-NMS method
    command = "python -m pipeline.study " + shlex.join(sys.argv[1:] if argv is None else argv)
    return StudyOutcome(list(effects), write_study(root / args.out, effects, runs, method, command, wall))


def main(argv: list[str] | None = None) -> int:
    print(run_study(argv).markdown)
    return 0


if __name__ == "__main__":
    run_cli(main)

"""Serve the ``repro`` flow as a scheduled deployment.

    python -m pipeline.flows.deploy --cron "0 2 * * *"      # nightly at 02:00

Runs until interrupted; the deployment ``repro/scheduled`` shows in the UI with its
schedule and can be triggered there or with
``prefect deployment run repro/scheduled``.  Overlapping runs are serialised by the
flow's lock (see pipeline.flows.repro); ``--limit 1`` also stops this process from
starting a second run while one is in flight.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.flows.repro import repro

DEPLOYMENT_NAME = "scheduled"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cron", default=None, help="cron schedule (default: params.yaml orchestration.cron)")
    parser.add_argument("--repo", default=".", help="project directory")
    parser.add_argument("--wait-s", type=float, default=None, help="wait this long for a running pipeline, then skip")
    parser.add_argument("--limit", type=int, default=1, help="max concurrent runs served by this process")
    args = parser.parse_args(argv)
    orch = load_params(Path(args.repo) / "params.yaml").get("orchestration", {}) or {}
    cron = args.cron or orch.get("cron", "0 2 * * *")
    wait_s = args.wait_s if args.wait_s is not None else float(orch.get("wait_s", 600))
    repro.serve(
        name=DEPLOYMENT_NAME,
        cron=cron,
        parameters={"repo": str(Path(args.repo).resolve()), "wait_s": wait_s},
        limit=args.limit,
        description="Reproduce the DVC pipeline (dvc repro, one task per stage).",
    )


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)

"""``python -m pipeline.flows.study``: the study (:mod:`pipeline.study`) as a Prefect flow.

Takes the same arguments as ``python -m pipeline.study`` and publishes the study's numbers to the
Prefect UI (Artifacts page, and the flow run's Artifacts tab): ``study-effects`` (table: one row
per effect with its estimate and interval) and ``study-report`` (markdown: the whole report).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipeline.cli import run_cli
from pipeline.study.__main__ import parse_args, run_study
from pipeline.study.effects import Effect
from pipeline.study.report import effects_rows


def publish_study(effects: Sequence[Effect], markdown: str) -> None:
    """The ``study-effects`` table and ``study-report`` markdown artifacts of the current flow run."""
    create_table_artifact(key="study-effects", table=effects_rows(effects),
                          description="Study effects: estimate and interval over seeds and test images")
    create_markdown_artifact(key="study-report", markdown=markdown, description="Study report (data/study/report.md)")


@flow(name="study")
def study_flow(argv: list[str]) -> int:
    """Run :func:`pipeline.study.__main__.run_study` with ``argv`` and publish its numbers."""
    outcome = run_study(list(argv))
    publish_study(outcome.effects, outcome.markdown)
    return len(outcome.effects)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parse_args(argv)  # --help and bad arguments answer here, before a flow run starts
    study_flow(argv)
    return 0


if __name__ == "__main__":
    run_cli(main)

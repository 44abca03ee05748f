"""The evaluate flow's Prefect artifacts (UI: the Artifacts page, and the flow run's Artifacts tab).

* ``evaluation-matrix`` (table): a row per set, per method its mAP@0.5 and COCO AP_small;
* ``evaluation-report`` (markdown): ``report.md`` of the evaluation
  (:func:`pipeline.evaluation.report.build_report`) with its figures as ``file://`` links;
* ``evaluation-report-page`` (link): the self-contained ``report.html`` (figures embedded).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from pipeline.evaluation.report import build_report
from pipeline.evaluation.show import load_metrics
from pipeline.evaluation.summary import CONTEXT
from pipeline.evaluation.tables import sets_by_methods
from pipeline.flows.artifacts import rounded

#: Columns of the ``evaluation-matrix`` table per method: metrics.json metric -> column suffix.
MATRIX_METRICS = {"map": "mAP@0.5", "ap_small": "AP_small"}


def matrix_rows(metrics: Mapping[str, float | None], order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """A row per set (those in ``order`` first): ``{"set": s, "<method> mAP@0.5": v,
    "<method> AP_small": v, ...}``, None where undefined."""
    rows: dict[str, dict[str, Any]] = {}
    for metric, suffix in MATRIX_METRICS.items():
        header, table = sets_by_methods(metrics, metric, order)
        for set_name, *values in table:
            row = rows.setdefault(str(set_name), {"set": set_name})
            row.update({f"{m} {suffix}": rounded(v) for m, v in zip(header[1:], values, strict=True)})
    return list(rows.values())


def linked_figures(markdown: str, out_dir: str | os.PathLike[str]) -> str:
    """``markdown`` with every relative image ``![t](p)`` turned into a ``file://`` link to ``out_dir/p``
    (the Prefect UI cannot load a file next to the report, a browser can open the link)."""
    base = Path(out_dir).resolve()

    def link(m: re.Match[str]) -> str:
        return f"[{m.group(1)}]({(base / m.group(2)).as_uri()})"

    return re.sub(r"!\[([^\]]*)\]\(([^():]+)\)", link, markdown)


def publish_evaluation(out_dir: str | os.PathLike[str]) -> None:
    """Artifacts ``evaluation-matrix``, ``evaluation-report`` and ``evaluation-report-page`` of ``out_dir``."""
    out = Path(out_dir).resolve()
    context = json.loads((out / CONTEXT).read_text()) if (out / CONTEXT).is_file() else {}
    rows = matrix_rows(load_metrics(out / "metrics.json"), list(context.get("sets", {})))
    create_table_artifact(
        rows, key="evaluation-matrix", description=f"Sets × methods ({out / 'metrics.json'})"
    )
    create_markdown_artifact(linked_figures(build_report(out), out), key="evaluation-report",
                             description=f"Evaluation report ({out / 'report.md'})")  # fmt: skip
    if (out / "report.html").is_file():
        page = (out / "report.html").as_uri()
        create_link_artifact(page, link_text=str(out / "report.html"), key="evaluation-report-page")

"""One real evaluation out dir per session (the oracle detector on tiny sets) for the report/plots tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import build_set
from tests.evaluation.eval_out import make_eval_out

#: COCO spells class names with spaces; a comma, quotes and a pipe test the CSV/Markdown quoting too.
COCO_LIKE = ["potted plant", 'hair "drier", pink|x']


@pytest.fixture(scope="session")
def coco_like_eval(tmp_path_factory) -> tuple[Path, dict, dict]:
    """``(out_dir, metrics, summary)`` of an evaluation with COCO-like class names, report written."""
    from pipeline.evaluation.report import write_report

    root = tmp_path_factory.mktemp("coco_like_eval")
    out, metrics, summary = make_eval_out(lambda recs, cls, name: build_set(root / name, recs, cls), root, COCO_LIKE)
    write_report(out)
    return out, metrics, summary

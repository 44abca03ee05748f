"""What the Prefect UI shows of a run besides its log: tags, and the training artifact.

Flow runs are tagged ``variant:<v>``, ``train-set:<name>`` and, inside a DVC experiment,
``exp:<name>`` (``DVC_EXP_NAME``, set by ``dvc exp run``), so runs of different variants
can be told apart and filtered in the UI.  Artifacts (UI: the Artifacts page, and each
flow run's Artifacts tab; a key keeps one version per run): ``train-summary`` (table:
final loss, steps, images/s of a training run) here; the evaluation's in
:mod:`pipeline.flows.eval_artifacts` (kept apart so the train stage does not depend on
the evaluation code).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect.artifacts import create_table_artifact


def run_tags(variant: str, train_set: str, exp_name: str | None = None) -> list[str]:
    """Tags of a train/evaluate flow run; ``exp_name`` defaults to ``$DVC_EXP_NAME``."""
    exp_name = exp_name if exp_name is not None else os.environ.get("DVC_EXP_NAME")
    tags = [f"variant:{variant}", f"train-set:{Path(str(train_set)).name}"]
    return tags + ([f"exp:{exp_name}"] if exp_name else [])


def checkpoint_tags(checkpoint: str | os.PathLike[str]) -> list[str]:
    """:func:`run_tags` of the run that trained ``checkpoint`` (its recorded variant and train set)."""
    from pipeline.detector.checkpoint import read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    return run_tags(
        str(ckpt.get("variant", "unknown")), str(ckpt.get("extra", {}).get("train_set", "unknown"))
    )


def tag_flow_run(tags: Sequence[str]) -> None:
    """Add ``tags`` to the current flow run (a no-op outside a flow run)."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    merged = sorted(set(ctx.flow_run.tags) | set(tags))
    with get_client(sync_client=True) as client:
        client.update_flow_run(ctx.flow_run.id, tags=merged)
    ctx.flow_run.tags = merged


def publish_training(summary: Mapping[str, Any]) -> None:
    """Table artifact ``train-summary`` from the ``fit`` task's summary dict."""
    rows = [
        {"metric": "final loss", "value": rounded(summary.get("final_loss"))},
        {"metric": "steps", "value": summary.get("steps")},
        {"metric": "images/s", "value": rounded(summary.get("images_per_s"), 1)},
        {"metric": "resumed from step", "value": summary.get("resumed_from")},
        {"metric": "model", "value": str(summary.get("model_path", ""))},
    ]
    create_table_artifact(
        rows, key="train-summary", description="Training run: final loss, steps, throughput"
    )


def rounded(value: Any, digits: int = 4) -> float | None:
    """``value`` rounded, or None when undefined (None, non-numeric or non-finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return round(float(value), digits)

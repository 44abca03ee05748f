"""What a study will cost, said before it runs: the baseline run's own measured training speed × the grid.

The estimate reads the committed baseline's training metrics (``dvclive/metrics.json``: the last
step and the measured images/s) and the ``train`` params (with the study's ``-S`` overrides applied to
``train.steps`` / ``train.batch_size``), so it holds for the machine that trained the baseline.
Variants differ in speed (``mdssd`` and ``fem`` are slower than ``ssd``); evaluation comes on top.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import yaml

TRAIN_METRICS = "data/models/detector/dvclive/metrics.json"


def _override(overrides: Sequence[str], key: str) -> str | None:
    values = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key]
    return values[-1] if values else None


def estimate(root: Path, runs: int, overrides: Sequence[str] = (), params: str = "params.yaml") -> str:
    """One line: the per-run and total training time of ``runs`` runs, or why it is unknown."""
    path = root / TRAIN_METRICS
    try:
        metrics = json.loads(path.read_text())
        done, speed = int(metrics["step"]), float(metrics["train"]["img_per_s"])
        train = yaml.safe_load((root / params).read_text())["train"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"cost: unknown (no baseline training speed in {TRAIN_METRICS}: {type(e).__name__}; run `dvc repro` first)"
    if speed <= 0:
        return f"cost: unknown ({TRAIN_METRICS} reports {speed} img/s)"
    steps_s, batch_s = _override(overrides, "train.steps"), _override(overrides, "train.batch_size")
    try:
        steps = int(steps_s) if steps_s not in (None, "null") else (train.get("steps") or done)
        batch = int(batch_s) if batch_s is not None else int(train["batch_size"])
    except (ValueError, KeyError) as e:
        return f"cost: unknown (train.steps / train.batch_size unreadable: {e})"
    per_run = steps * batch / speed
    return (f"cost: {runs} runs × {steps} steps × batch {batch} at the baseline's {speed:.1f} img/s "
            f"({TRAIN_METRICS}, measured where it trained) ≈ {per_run / 60:.1f} min of training per run, "
            f"{runs * per_run / 3600:.1f} h in all, plus evaluation; slower variants take longer")

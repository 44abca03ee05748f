"""The ``train`` Prefect flow: a thin wrapper over :func:`pipeline.detector.train.train`.

Tasks: ``load-config`` (validate params), ``fit`` (the training run; its metrics are
written in dvclive's layout under ``<out>/dvclive`` and echoed to the Prefect log),
``summarise`` (a JSON summary next to the model).  Runs with a Prefect server when
``PREFECT_API_URL`` is set (see ``python -m pipeline.flows.server``) and without one
otherwise.  On a GPU machine without Prefect use ``python -m pipeline.detector.train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from pipeline.atomic import write_json
from pipeline.config import load_params, section
from pipeline.detector.metrics_log import TsvLogger
from pipeline.detector.model import ModelConfig
from pipeline.detector.train import TrainConfig, train


class EchoLogger:
    """Writes dvclive-layout files and echoes every ``every``-th record to the Prefect run log."""

    def __init__(self, inner: TsvLogger, every: int = 10) -> None:
        self.inner, self.every = inner, max(1, every)
        self.log_ = get_run_logger()

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.inner.log(metrics, step)
        if step % self.every == 0:
            self.log_.info("step %d  %s", step, "  ".join(f"{k}={v:.4g}" for k, v in metrics.items()))

    def close(self) -> None:
        self.inner.close()


@task(name="load-config", cache_policy=None)
def load_config(params_file: str) -> tuple[ModelConfig, TrainConfig]:
    params = load_params(params_file)
    return section(params, "model", ModelConfig), section(params, "train", TrainConfig)


@task(name="fit", cache_policy=None)
def fit(model_cfg: ModelConfig, train_cfg: TrainConfig, train_set: str, out: str, device: str | None) -> dict[str, Any]:
    logger = EchoLogger(TsvLogger(Path(out) / "dvclive", resume_step=None), every=train_cfg.log_every)
    result = train(model_cfg, train_cfg, train_set, out, logger=logger, device=device)
    return {k: v for k, v in vars(result).items() if k != "history"}


@task(name="summarise", cache_policy=None)
def summarise(summary: dict[str, Any], out: str) -> str:
    path = Path(out) / "train_summary.json"
    write_json(path, {k: (str(v) if isinstance(v, Path) else v) for k, v in summary.items()})
    get_run_logger().info("training summary: %s", path)
    return str(path)


@flow(name="train", log_prints=True)
def train_flow(train_set: str, out: str, params_file: str = "params.yaml", device: str | None = None) -> str:
    """Train the configured SSD variant on ``train_set``; returns the summary path."""
    model_cfg, train_cfg = load_config(params_file)
    summary = fit(model_cfg, train_cfg, train_set, out, device)
    return summarise(summary, out)

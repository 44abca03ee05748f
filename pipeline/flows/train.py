"""The ``train`` Prefect flow: a thin wrapper over :func:`pipeline.detector.train.train`.

Tasks: ``load-config`` (validate params), ``fit`` (the training run; its metrics are
written in dvclive's layout under ``<out>/dvclive`` by the core and echoed to the
Prefect log),
``summarise`` (a JSON summary next to the model).  The run is tagged with the
variant, the train set and the DVC experiment, and publishes a ``train-summary``
table artifact (:mod:`pipeline.flows.artifacts`).  Runs with a Prefect server when
``PREFECT_API_URL`` is set (see ``python -m pipeline.flows.server``) and without one
otherwise.  On a GPU machine without Prefect use ``python -m pipeline.detector.train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from pipeline.atomic import write_json
from pipeline.config import load_params, section
from pipeline.detector.model import ModelConfig
from pipeline.detector.train import TrainConfig, train
from pipeline.flows.artifacts import publish_training, run_tags, tag_flow_run


def echo_to_run_log(row: dict[str, float], step: int, total: int) -> None:
    """Mirror a training log row into the Prefect run log (visible in the UI) as ``step n/N  k=v ...``."""
    get_run_logger().info("step %d/%d  %s", step, total, "  ".join(f"{k}={v:.4g}" for k, v in row.items()))


@task(name="load-config", cache_policy=None)
def load_config(params_file: str) -> tuple[ModelConfig, TrainConfig]:
    params = load_params(params_file)
    return section(params, "model", ModelConfig), section(params, "train", TrainConfig)


@task(name="fit", cache_policy=None)
def fit(model_cfg: ModelConfig, train_cfg: TrainConfig, train_set: str, out: str, device: str | None) -> dict[str, Any]:
    result = train(model_cfg, train_cfg, train_set, out, device=device, on_log=echo_to_run_log)
    return {k: v for k, v in vars(result).items() if k not in ("history", "model")}


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
    tag_flow_run(run_tags(model_cfg.parsed_variant.name, train_set))
    summary = fit(model_cfg, train_cfg, train_set, out, device)
    publish_training(summary)
    return summarise(summary, out)

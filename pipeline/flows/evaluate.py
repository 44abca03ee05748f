"""The ``evaluate`` Prefect flow: the {sets} × {NMS, Soft-NMS} evaluation matrix.

Tasks: ``predict-<set>`` — one per test set, cached on the *content* of the
checkpoint and the set directory plus the model/evaluate params and code version
(:class:`pipeline.flows.caching.ContentInputs`), so an unchanged model/set pair is
never recomputed across runs — then ``score`` which computes VOC/COCO metrics and
writes every output atomically via :func:`pipeline.evaluation.matrix.evaluate_matrix`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prefect import flow, get_run_logger, task

from pipeline.config import load_params, section
from pipeline.data.schema import read_records
from pipeline.detector.model import ModelConfig
from pipeline.evaluation.config import EvaluateConfig
from pipeline.evaluation.infer import load_model_for_eval, predict_set_multi
from pipeline.evaluation.matrix import evaluate_matrix
from pipeline.evaluation.report import write_report
from pipeline.evaluation.summary import summarise
from pipeline.evaluation.tables import sets_by_methods, text_table
from pipeline.flows.artifacts import checkpoint_tags, tag_flow_run
from pipeline.flows.caching import ContentInputs
from pipeline.flows.eval_artifacts import publish_evaluation


def _load(params_file: str) -> tuple[ModelConfig, EvaluateConfig]:
    params = load_params(params_file)
    return section(params, "model", ModelConfig), section(params, "evaluate", EvaluateConfig)


@task(
    name="predict",
    task_run_name="predict-{set_name}",
    cache_policy=ContentInputs(path_args=("checkpoint", "set_dir"), ignore_args=("set_name",)),
    persist_result=True,
)
def predict(set_name: str, set_dir: str, checkpoint: str, model_params: dict, eval_params: dict) -> dict:
    """Detections of every configured method on one set (set pixel frame)."""
    model_cfg, eval_cfg = ModelConfig(**model_params), _eval_cfg(eval_params)
    classes = read_records(set_dir)[1]
    model = load_model_for_eval(checkpoint, model_cfg, classes)
    get_run_logger().info("predicting %s (%s)", set_name, set_dir)
    return predict_set_multi(model, set_dir, eval_cfg.method_configs(), eval_cfg.split, eval_cfg.batch_size,
                             eval_cfg.device, eval_cfg.num_workers, progress=True, slice_cfg=eval_cfg.slice)


def _eval_cfg(eval_params: dict) -> EvaluateConfig:
    from pipeline.config import parse

    return parse(EvaluateConfig, eval_params, "evaluate")


@task(name="score", cache_policy=None)
def score(checkpoint: str, sets: dict[str, str], reference: str, out: str, model_params: dict,
          eval_params: dict, predictions: dict) -> dict[str, float | None]:
    model_cfg, cfg = ModelConfig(**model_params), _eval_cfg(eval_params)
    classes = read_records(reference)[1]
    model = load_model_for_eval(checkpoint, model_cfg, classes)
    metrics = evaluate_matrix(
        model, sets, reference, cfg.method_configs(), out, split=cfg.split, batch_size=cfg.batch_size,
        device=cfg.device, num_workers=cfg.num_workers, coco_backend=cfg.coco_backend,
        pr_classes=cfg.pr_classes, pictures=cfg.pictures, picture_method=cfg.picture_method,
        picture_score=cfg.picture_score, predictions=predictions, bootstrap=cfg.bootstrap,
    )
    get_run_logger().info("mAP@0.5 (VOC), sets × methods:\n%s", text_table(*sets_by_methods(metrics, "map")))
    return metrics


@task(name="report", cache_policy=None)
def report(out: str, metrics: dict, sets: dict[str, str], checkpoint: str, reference: str, eval_params: dict,
           sr_quality: str | None, train_metrics: str | None, figures: list[str]) -> dict:
    """summary.json (the headline metrics), context.json, report.md and report.html in ``out``."""
    summary = summarise(out, metrics, _eval_cfg(eval_params), sets, checkpoint, reference,
                        sr_quality, train_metrics, figures)
    md, _ = write_report(out)
    get_run_logger().info("report: %s", md)
    return summary


@flow(name="evaluate", log_prints=True)
def evaluate_flow(checkpoint: str, sets: dict[str, str], reference: str, out: str,
                  params_file: str = "params.yaml", sr_quality: str | None = None,
                  train_metrics: str | None = None, figures: list[str] | None = None) -> dict[str, float | None]:
    """Evaluate ``checkpoint`` on every set (name -> set dir) against ``reference`` (HR); then write the
    headline summary and the report (``sr_quality``/``train_metrics``: optional JSON inputs of it)."""
    for name, path in sets.items():
        if not Path(path).is_dir():
            raise FileNotFoundError(f"evaluation set {name!r} not found: {path}")
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    model_cfg, eval_cfg = _load(params_file)
    model_params = dataclasses.asdict(model_cfg)
    eval_params = _plain(dataclasses.asdict(eval_cfg))
    tag_flow_run(checkpoint_tags(checkpoint))  # variant, train set, DVC experiment: told apart in the UI
    predictions = {name: predict(name, path, checkpoint, model_params, eval_params) for name, path in sets.items()}
    metrics = score(checkpoint, sets, reference, out, model_params, eval_params, predictions)
    report(out, metrics, sets, checkpoint, reference, eval_params, sr_quality, train_metrics, list(figures or []))
    publish_evaluation(out)  # sets × methods table, report and figure links as Prefect artifacts
    return metrics


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value

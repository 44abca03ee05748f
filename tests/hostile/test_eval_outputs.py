"""Hostile inputs to the evaluation outputs: the headline summary's input files, the matrix viewer,
the report's out dir, the evaluate stage's early checks.  Each is one line naming the file/key."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from pipeline.cli import run_cli
from pipeline.config import ConfigError, parse
from pipeline.evaluation.config import EvaluateConfig
from pipeline.evaluation.report import ReportError, build_report
from pipeline.evaluation.show import MetricsFileError
from pipeline.evaluation.show import main as show_main
from pipeline.evaluation.summary import SummaryInputError, check_inputs, read_json_input

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, r"SR quality file not found"),
        ("{not json", r"SR quality is not valid JSON"),
        ("[1, 2]", r"SR quality must be a JSON object, got list"),
        ('{"sr": {"psnr": 30}}', r"missing key 'psnr_gain_db'"),
        ('{"psnr_gain_db": "0.5"}', r"'psnr_gain_db' must be a number, got '0.5'"),
        ('{"psnr_gain_db": true}', r"'psnr_gain_db' must be a number, got True"),
    ],
)
def test_bad_sr_quality_file_is_one_line_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "sr_quality.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SummaryInputError, match=message) as err:
        check_inputs(read_json_input(path, "SR quality"), None, (str(path), "-"))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"step": 3}, r"train.json: missing key 'train.loss'"),
        ({"train": {"loss": 1.0}}, r"train.json: missing key 'train.img_per_s'"),
        ({"train": 5}, r"missing key 'train.loss'"),
        ({"train": {"loss": [1], "img_per_s": 2}}, r"'train.loss' must be a number, got \[1\]"),
    ],
)
def test_bad_training_metrics_are_one_line(metrics, message):
    with pytest.raises(SummaryInputError, match=message):
        check_inputs(None, metrics, ("-", "train.json"))


def test_null_and_nan_inputs_are_accepted_as_undefined():
    check_inputs({"psnr_gain_db": None}, {"train": {"loss": float("nan"), "img_per_s": None}})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"metrics file not found"),
        ("{oops", r"not valid JSON"),
        ('{"hr": {"nms": {"map": 0.5}}}', r"expected a flat JSON object of numbers"),
        ('{"hr.map": 0.5}', r"metric key 'hr.map' is not '<set>.<method>.<metric>'"),
        ('{"hr.nms.map": true}', r"expected a flat JSON object of numbers"),
        ('{"hr.nms.map": "0.5"}', r"expected a flat JSON object of numbers"),
    ],
)
def test_show_bad_metrics_file_exits_2_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "metrics.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as ex:
        run_cli(lambda: show_main([str(path)]))
    err = capsys.readouterr().err
    assert ex.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    with pytest.raises(MetricsFileError, match=message):
        show_main([str(path)])


def test_show_prints_undefined_and_legacy_minus_one_as_dash(tmp_path, capsys):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"hr.nms.map": 0.5, "hr.nms.ap_large": None, "lr.nms.map": 0.25,
                                "lr.nms.ap_large": -1.0, "hr.softnms.map": 0.75}))
    show_main([str(path), "--metric", "ap_large", "--metric", "map"])
    out = capsys.readouterr().out
    assert "-1" not in out
    assert out.splitlines()[:4] == ["ap_large: COCO AP_large", "set  nms  softnms", "hr     -        -",
                                    "lr     -        -"]
    assert "hr   0.5000   0.7500" in out and "lr   0.2500        -" in out
    with pytest.raises(MetricsFileError, match=r"metric 'mAP' is not in the file"):
        show_main([str(path), "--metric", "mAP"])


def test_report_on_an_incomplete_out_dir_names_the_missing_file(tmp_path):
    with pytest.raises(ReportError, match=r"summary.json: not found \(run the evaluate stage first\)"):
        build_report(tmp_path)
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "context.json").write_text("{broken")
    with pytest.raises(ReportError, match=r"context.json: not valid JSON"):
        build_report(tmp_path)


@pytest.mark.parametrize(
    ("evaluate", "message"),
    [
        ({"pr_classes": "pottedplant"}, r"evaluate.pr_classes: expected 'auto' or a list of class names"),
        ({"pr_classes": 3}, r"evaluate.pr_classes: expected a string, got 3"),
        ({"summary_sets": "hr"}, r"evaluate.summary_sets: expected a list"),
        ({"summary_sets": ["hr", "sr", "hr"]}, r"evaluate.summary_sets: lists a set twice"),
        ({"summary_small_sets": ["sr", "sr"]}, r"evaluate.summary_small_sets: lists a set twice"),
    ],
)
def test_bad_evaluate_params_are_config_errors(evaluate, message):
    with pytest.raises(ConfigError, match=message):
        parse(EvaluateConfig, evaluate, "evaluate")


def _stage_main():
    spec = importlib.util.spec_from_file_location("evaluate_stage", REPO / "stages" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_stage_checks_summary_inputs_before_the_flow_starts(make_set, tmp_path):
    """A headline set that is not evaluated, or a broken input file: one line before any evaluation."""
    from pipeline.detector.checkpoint import save_detector
    from pipeline.detector.model import ModelConfig, build_detector
    from tests.evaluation.test_matrix import CLASSES, hr_records

    hr = make_set(hr_records(), CLASSES, "hr")
    ckpt = tmp_path / "model.pt"
    cfg = ModelConfig(width=0.125)
    save_detector(ckpt, build_detector(cfg, num_classes=2, init_backbone=False), extra={"classes": CLASSES})
    params = tmp_path / "params.yaml"
    params.write_text("model: {width: 0.125}\nevaluate: {summary_sets: [hr], summary_small_sets: [hr, sr]}\n")
    main = _stage_main()
    base = ["--checkpoint", str(ckpt), "--set", f"hr={hr}", "--reference", str(hr), "--out", str(tmp_path / "e"),
            "--params", str(params)]
    with pytest.raises(SummaryInputError, match=r"evaluate.summary_small_sets: 'sr' is not an evaluated set \(sets: \['hr'\]\)"):
        main(base)
    params.write_text("model: {width: 0.125}\nevaluate: {summary_sets: [hr], summary_small_sets: [hr]}\n")
    (tmp_path / "sr.json").write_text('{"psnr": 1}')
    with pytest.raises(SummaryInputError, match=r"sr.json: missing key 'psnr_gain_db'"):
        main([*base, "--sr-quality", str(tmp_path / "sr.json")])
    assert not (tmp_path / "e").exists()

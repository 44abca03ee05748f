"""Bad inputs to what the Prefect UI is fed (tags, evaluation artifacts): one clear line, or handled."""

from __future__ import annotations

import math

import pytest

from pipeline.errors import PipelineError
from pipeline.flows.artifacts import checkpoint_tags, run_tags, tag_flow_run
from pipeline.flows.eval_artifacts import linked_figures, matrix_rows, publish_evaluation
from pipeline.runstate import CheckpointError


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "metrics file not found"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a flat JSON object of numbers"),
        ('{"hr.nms.map": "high"}', "expected a flat JSON object of numbers"),
        ('{"hr.map": 0.5}', "is not '<set>.<method>.<metric>'"),
    ],
)
def test_unusable_metrics_file_is_one_line_before_anything_is_published(tmp_path, content, message):
    if content is not None:
        (tmp_path / "metrics.json").write_text(content)
    with pytest.raises(PipelineError, match=message) as info:
        publish_evaluation(tmp_path)  # raises before any Prefect call: no server needed
    assert str(tmp_path / "metrics.json") in str(info.value) and "\n" not in str(info.value)


def test_undefined_values_are_never_shown_as_scores():
    metrics = {"hr.nms.map": 0.51234, "hr.nms.ap_small": None, "lr.nms.map": math.nan, "lr.nms.ap_small": 0.2,
               "hr.soft.map": math.inf, "hr.soft.ap_small": 0.1}  # fmt: skip
    rows = matrix_rows(metrics, order=["lr"])
    assert rows == [
        {"set": "lr", "nms mAP@0.5": None, "soft mAP@0.5": None, "nms AP_small": 0.2, "soft AP_small": None},
        {
            "set": "hr",
            "nms mAP@0.5": 0.5123,
            "soft mAP@0.5": None,
            "nms AP_small": None,
            "soft AP_small": 0.1,
        },
    ]


def test_only_relative_images_become_file_links(tmp_path):
    md = "![pr hr](figures/pr_hr nms.png) ![web](https://example.org/a.png) ![odd](figures/a(1).png)"
    out = linked_figures(md, tmp_path)
    assert f"[pr hr]({(tmp_path / 'figures/pr_hr nms.png').resolve().as_uri()})" in out
    assert "![web](https://example.org/a.png)" in out  # a URL is left alone
    assert "![odd](figures/a(1).png)" in out  # parentheses in a name: left as it was, never a broken link


def test_checkpoint_tags_from_bad_or_bare_checkpoints(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        checkpoint_tags(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        checkpoint_tags(tmp_path / "none.pt")
    from pipeline.detector.checkpoint import save_detector
    from pipeline.detector.model import ModelConfig, build_detector

    save_detector(tmp_path / "bare.pt", build_detector(ModelConfig(width=0.0625), 2, init_backbone=False))
    assert checkpoint_tags(tmp_path / "bare.pt")[:2] == ["variant:ssd", "train-set:unknown"]


def test_tags_from_odd_names_and_outside_a_flow(monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert run_tags("shallow+fem", "data/sets/hr_aug/") == ["variant:shallow+fem", "train-set:hr_aug"]
    monkeypatch.setenv("DVC_EXP_NAME", "")
    assert run_tags("ssd", "hr") == ["variant:ssd", "train-set:hr"]  # an empty name adds no tag
    monkeypatch.setenv("DVC_EXP_NAME", "snaky-rump")
    assert run_tags("ssd", "hr")[-1] == "exp:snaky-rump"
    tag_flow_run(["variant:ssd"])  # outside a flow run: nothing to tag, no server contacted

"""Where positives land (pipeline.detector.assignment): counts agree with the model's own
matcher, and the known behaviours of each matcher show up in them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_params, section
from pipeline.data.schema import ImageRecord
from pipeline.detector.assignment import assignment_of_set, main, size_labels
from pipeline.detector.model import ModelConfig
from pipeline.detector.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
SIZE = 300  # = model.input_size: box sides in image px are sides in the network input


def record(name: str, boxes: list[list[float]]) -> ImageRecord:
    k = len(boxes)
    return ImageRecord(name, f"{name}.jpg", "train", SIZE, SIZE, np.array(boxes, np.float32),
                       np.zeros(k, np.int64), np.zeros(k, bool), np.zeros(k, bool))


def configs() -> tuple[ModelConfig, TrainConfig]:
    params = load_params(ROOT / "params.yaml")
    train = replace(section(params, "train", TrainConfig), augmentation="none", split="train")
    return section(params, "model", ModelConfig), train


def test_size_labels() -> None:
    assert size_labels() == ["<16", "16-32", "32-64", ">=64"]
    assert size_labels((8.0, 24.5)) == ["<8", "8-24.5", ">=24.5"]


def test_counts_every_object_and_positive_once(make_set) -> None:
    # one object per size group, far apart
    boxes = [[20, 20, 30, 30], [150, 20, 174, 44], [20, 150, 68, 198], [150, 150, 250, 250]]
    set_dir = make_set([record("a", boxes), record("b", boxes[:2])], ["thing"])
    model_cfg, train_cfg = configs()
    for a in assignment_of_set(model_cfg, train_cfg, set_dir, ["ssd", "atss", "shallow"]):
        assert a.objects == [2, 2, 1, 1], a.variant
        share = a.share()
        np.testing.assert_allclose(share.sum(0), 1.0)  # every group has positives here
        assert len(a.levels) == len(a.anchors) == len(a.positives)
        assert np.all((a.mean_iou() > 0) & (a.mean_iou() <= 1))
        if a.matcher == "iou":  # the best box of each object is forced positive
            assert a.unassigned == [0, 0, 0, 0]
            assert np.all(a.mean_iou()[1:] >= 0.3)


def test_iou_threshold_0_3_on_the_stride_4_level_multiplies_positives(make_set) -> None:
    boxes = [[40, 40, 64, 64], [200, 100, 226, 128]]  # 24-28 px objects
    set_dir = make_set([record("a", boxes)], ["thing"])
    model_cfg, train_cfg = configs()
    ssd, shallow = assignment_of_set(model_cfg, train_cfg, set_dir, ["ssd", "shallow"])
    assert "conv3_3" not in ssd.levels and shallow.levels[0] == "conv3_3"
    assert shallow.share()[0, 1] > 0.9  # positives of the 16-32 px group sit on conv3_3
    assert shallow.per_object()[1] > 5 * ssd.per_object()[1]
    assert shallow.mean_iou()[1] < ssd.mean_iou()[1]


def test_two_tiny_objects_sharing_a_best_box_leave_one_without_positive(make_set) -> None:
    # 6 px objects 2 px apart: the same conv4_3 default box is the best for both; the higher
    # GT index takes it (ssd.pytorch's order) and the other object learns from nothing
    set_dir = make_set([record("a", [[100, 100, 106, 106], [101, 101, 107, 107]])], ["thing"])
    model_cfg, train_cfg = configs()
    (ssd,) = assignment_of_set(model_cfg, train_cfg, set_dir, ["ssd"])
    assert ssd.objects[0] == 2 and ssd.unassigned[0] == 1


def test_cli_prints_tables_and_writes_json(make_set, tmp_path, capsys) -> None:
    set_dir = make_set([record("a", [[20, 20, 60, 60]])], ["thing"])
    out = tmp_path / "assign.json"
    assert main(["--set", str(set_dir), "--params", str(ROOT / "params.yaml"), "--variants", "ssd", "shallow",
                 "--augmentation", "none", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "shallow: share of each object size's positives per level" in text and "conv3_3" in text
    data = json.loads(out.read_text())
    assert [v["variant"] for v in data["variants"]] == ["ssd", "shallow"] and data["augmentation"] == "none"
    with pytest.raises(SystemExit):
        main(["--set", str(set_dir), "--epochs", "0"])

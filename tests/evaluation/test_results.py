"""COCO results-format detections files: round trip and validation errors naming file and entry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.evaluation.results import (
    ResultsFormatError,
    detections_to_results,
    read_results,
    results_to_detections,
    write_results,
)
from tests.evaluation.helpers import dets

GT = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1}, {"id": 2}], "annotations": []}


def test_round_trip(tmp_path):
    ids = {"a": 1, "b": 2}
    d = {"b": dets([[1, 2, 11, 22], [0, 0, 3, 4]], [0.25, 0.75], [1, 0]), "a": dets(np.zeros((0, 4)), [], [])}
    res = detections_to_results(d, ids)
    assert res[0] == {"image_id": 2, "category_id": 2, "bbox": [1.0, 2.0, 10.0, 20.0], "score": 0.25}
    path = tmp_path / "dets.json"
    write_results(path, res)
    back = results_to_detections(read_results(path, GT), ids)
    assert set(back) == {"b"}
    np.testing.assert_allclose(back["b"].boxes, [[0, 0, 3, 4], [1, 2, 11, 22]])
    np.testing.assert_allclose(back["b"].scores, [0.75, 0.25])
    assert back["b"].labels.tolist() == [0, 1]
    write_results(path, [])
    assert read_results(path) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"image_id": 1}', "expected a JSON list"),
        (
            '[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]',
            r"entry 0: missing key\(s\) \['score'\]",
        ),
        (
            '[{"image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "score": 0.5}, 3]',
            "entry 1: expected an object",
        ),
        (
            '[{"image_id": "1", "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]',
            "entry 0: image_id must be an integer",
        ),
        ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 0.5}]', "entry 0: bbox must be 4"),
        ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5}]', "negative width"),
        ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": NaN}]', "score must be a finite"),
        (
            '[{"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]',
            "image_id 9 is not in the ground truth",
        ),
        (
            '[{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5}]',
            "category_id 3 is not a known",
        ),
    ],
)
def test_malformed_files_name_file_and_entry(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsFormatError, match=message) as info:
        read_results(path, GT)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="detections file not found"):
        read_results(tmp_path / "nope.json")


def test_writer_is_valid_json(tmp_path):
    path = tmp_path / "d.json"
    write_results(path, detections_to_results({"a": dets([[0, 0, 1, 1]], [0.5], [0])}, {"a": 1}))
    assert json.loads(path.read_text())[0]["category_id"] == 1

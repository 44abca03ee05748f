"""COCO evaluation keeps its summary out of every log and stream (the Prefect log included)."""

from __future__ import annotations

import logging

import pytest

from pipeline.evaluation.coco import coco_evaluate

GT = {
    "images": [{"id": 1, "width": 100, "height": 100}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0}
    ],
    "categories": [{"id": 1, "name": "a"}],
}


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_coco_evaluation_prints_and_logs_nothing(backend, capfd, caplog):
    fce = logging.getLogger("faster_coco_eval")
    fce.setLevel(logging.NOTSET)
    with caplog.at_level(logging.DEBUG):  # every logger, down to DEBUG, is recorded
        hit = coco_evaluate(
            GT, [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}], backend
        )
        empty = coco_evaluate(GT, [], backend)
    assert hit["ap50"] == pytest.approx(1.0) and empty["ap50"] == 0.0  # it did evaluate
    out, err = capfd.readouterr()  # file-descriptor level: C++ printing would show here too
    assert out == "" and err == ""
    assert [r for r in caplog.records if r.name.startswith(("faster_coco_eval", "pycocotools"))] == []
    assert fce.level == logging.NOTSET  # the quieting is undone afterwards

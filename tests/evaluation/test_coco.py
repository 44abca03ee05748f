"""COCO adapter: both backends agree with each other and with plain pycocotools on genuine COCO GT."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pipeline.evaluation.coco import STAT_NAMES, coco_evaluate, records_to_coco
from tests.evaluation.helpers import rec


def jittered_results(gt: dict, seed: int) -> list[dict]:
    """Synthetic detections: each GT box jittered 0–2 times plus random boxes, seeded scores."""
    rng = np.random.default_rng(seed)
    sizes = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
    cats = [c["id"] for c in gt["categories"]]
    out = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        for _ in range(int(rng.integers(0, 3))):
            j = rng.normal(0, 0.15, 4) * [w, h, w, h]
            cat = a["category_id"] if rng.random() > 0.1 else int(rng.choice(cats))
            out.append({"image_id": a["image_id"], "category_id": cat,
                        "bbox": [x + j[0], y + j[1], max(w + j[2], 0.5), max(h + j[3], 0.5)],
                        "score": float(rng.random())})  # fmt: skip
    for img, (iw, ih) in sizes.items():
        for _ in range(3):
            bw, bh = rng.uniform(4, iw / 2), rng.uniform(4, ih / 2)
            out.append(
                {
                    "image_id": img,
                    "category_id": int(rng.choice(cats)),
                    "bbox": [rng.uniform(0, iw - bw), rng.uniform(0, ih - bh), bw, bh],
                    "score": float(rng.random()),
                }
            )
    return out


@pytest.fixture(scope="module")
def coco_val(shared_data) -> dict:
    return json.loads((shared_data / "coco" / "annotations" / "instances_val2017.json").read_text())


def plain_pycocotools(gt_path, results) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO(str(gt_path))
        ev = COCOeval(cg, cg.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_backends_identical_and_equal_to_pycocotools(coco_val, shared_data):
    results = jittered_results(coco_val, seed=0)
    ours = coco_evaluate(coco_val, results, "pycocotools")
    fast = coco_evaluate(coco_val, results, "faster")
    ref = plain_pycocotools(shared_data / "coco" / "annotations" / "instances_val2017.json", results)
    assert list(ours) == list(STAT_NAMES)
    np.testing.assert_array_equal([ours[k] for k in STAT_NAMES], ref)
    np.testing.assert_allclose([fast[k] for k in STAT_NAMES], ref, rtol=0, atol=1e-12)
    assert 0.2 < ours["ap50"] < 0.95  # a real, non-trivial operating point


def test_empty_results_give_zero_not_crash(coco_val):
    for backend in ("pycocotools", "faster"):
        stats = coco_evaluate(coco_val, [], backend)
        assert stats["coco_ap"] == 0.0 and stats["ar100"] == 0.0


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown COCO backend"):
        coco_evaluate({"images": [], "annotations": [], "categories": []}, [], "detectron")  # type: ignore[arg-type]


def test_records_to_coco_conversion():
    records = [
        rec("b", [[10, 20, 40, 30]], [1], difficult=[True]),
        rec("a", [[0, 0, 5, 5], [1, 1, 3, 3]], [0, 0], iscrowd=[False, True]),
        rec("c", np.zeros((0, 4)), []),
    ]
    gt = records_to_coco(records, ["x", "y"])
    assert [(im["id"], im["image_key"]) for im in gt["images"]] == [(1, "a"), (2, "b"), (3, "c")]
    anns = gt["annotations"]
    assert [a["image_id"] for a in anns] == [1, 1, 2]
    assert anns[2]["bbox"] == [10, 20, 30, 10] and anns[2]["area"] == 300 and anns[2]["category_id"] == 2
    assert [a["iscrowd"] for a in anns] == [0, 1, 1]  # crowd kept, difficult -> crowd
    assert gt["categories"] == [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]

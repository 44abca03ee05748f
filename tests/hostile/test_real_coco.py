"""Genuine COCO (../shared/data/coco): size buckets by COCO's own rule, equal to pycocotools' counts.

The sample (208 train2017 + 80 val2017 images with their original JSON) is fetched as a
``local`` source and ingested for real; the stats stage runs on the set.  pycocotools'
``COCO.getAnnIds(areaRng=..., iscrowd=...)`` over the genuine JSON, with COCOeval's own
``areaRng`` table, gives the reference counts.  Crowd regions: the stats leave them out
(COCOeval ignores them), so the stats are compared with ``iscrowd=False``; the ingest
report counts every object, so it is compared with all annotations.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from dataclasses import replace

import numpy as np
import pytest

from pipeline.augment.copy_paste import small_object_mask
from pipeline.data.boxes import MEDIUM_MAX_AREA, SMALL_MAX_AREA
from pipeline.data.ingest import IngestConfig, ingest
from pipeline.data.schema import read_records
from pipeline.data.sources import DataConfig, fetch
from pipeline.data.stats import BUCKETS, compute_stats
from tests.conftest import REPO_ROOT

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

JSONS = {"train": "instances_train2017.json", "test": "instances_val2017.json"}


@pytest.fixture(scope="module")
def genuine(shared_data, tmp_path_factory):  # noqa: ANN001, ANN201
    """(records, classes, ingest report, stats metrics JSON, {split: pycocotools COCO}) of the genuine sample."""
    root = tmp_path_factory.mktemp("real_coco")
    fetch(DataConfig(source="local", local_path=str(shared_data / "coco"), local_format="coco"), 0,
          root / "raw", progress=False)
    report = ingest(root / "raw", root / "hr", IngestConfig(verify_images="header"), progress=False)  # on_error fail
    spec = importlib.util.spec_from_file_location("stats_stage", REPO_ROOT / "stages" / "stats.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    (root / "params.yaml").write_text("stats:\n  bin_px: 8\n")
    stage.main(["--set", str(root / "hr"), "--metrics", str(root / "stats.json"), "--plots", str(root / "plots"),
                "--figure", str(root / "hist.png"), "--params", str(root / "params.yaml")])
    with contextlib.redirect_stdout(io.StringIO()):
        cocos = {s: COCO(str(shared_data / "coco" / "annotations" / name)) for s, name in JSONS.items()}
    records, classes = read_records(root / "hr")
    return records, classes, report, json.loads((root / "stats.json").read_text()), cocos


def _official(coco: COCO, iscrowd: bool | None) -> dict[str, int]:
    """pycocotools' own counts per COCOeval area range (small, medium, large)."""
    params = COCOeval(iouType="bbox").params
    return {label: len(coco.getAnnIds(areaRng=rng, iscrowd=iscrowd))
            for label, rng in zip(params.areaRngLbl, params.areaRng, strict=True) if label in BUCKETS}


def test_thresholds_are_cocoevals_and_no_genuine_area_sits_on_one(genuine):  # noqa: ANN001
    *_, cocos = genuine
    params = COCOeval(iouType="bbox").params
    assert dict(zip(params.areaRngLbl, params.areaRng, strict=True))["small"] == [0, SMALL_MAX_AREA]
    assert dict(zip(params.areaRngLbl, params.areaRng, strict=True))["medium"] == [SMALL_MAX_AREA, MEDIUM_MAX_AREA]
    # getAnnIds' open ranges and our half-open ones (< 32², < 96²) agree unless an area is exactly on an edge
    areas = [a["area"] for c in cocos.values() for a in c.dataset["annotations"]]
    assert len(areas) == 815 + 1644 and not {0.0, SMALL_MAX_AREA, MEDIUM_MAX_AREA} & set(areas)


def test_stats_and_ingest_buckets_equal_pycocotools_counts(genuine):  # noqa: ANN001
    records, classes, report, metrics, cocos = genuine
    assert report["skipped"] == [] and report["size_measure"] == metrics["size_measure"] == "coco_area"
    for split, coco in cocos.items():
        official = _official(coco, iscrowd=False)
        assert {b: metrics["splits"][split][b] for b in BUCKETS} == official, split
        crowd = sum(a["iscrowd"] for a in coco.dataset["annotations"])
        assert metrics["splits"][split]["crowd"] == crowd and metrics["splits"][split]["instances"] == sum(
            official.values())
        assert {b: report["counts"][split][b] for b in BUCKETS} == _official(coco, iscrowd=None), split
    assert {b: metrics["splits"]["test"][b] for b in BUCKETS} == {"small": 337, "medium": 297, "large": 170}


def test_box_area_would_move_objects_to_other_buckets(genuine):  # noqa: ANN001
    records, classes, _, metrics, cocos = genuine
    by_box = compute_stats([replace(r, area=None) for r in records], classes)
    assert by_box.size_measure == "box_area"
    anns = [a for a in cocos["test"].dataset["annotations"] if not a["iscrowd"]]
    box = np.array([a["bbox"][2] * a["bbox"][3] for a in anns])
    want = [int((box < SMALL_MAX_AREA).sum()), int(((box >= SMALL_MAX_AREA) & (box < MEDIUM_MAX_AREA)).sum()),
            int((box >= MEDIUM_MAX_AREA).sum())]
    assert [by_box.splits["test"][b] for b in BUCKETS] == want == [268, 291, 245]  # vs 337 / 297 / 170 by area
    assert by_box.splits["test"]["small_share"] < metrics["splits"]["test"]["small_share"]


def test_copy_paste_small_selection_is_cocos_small(genuine):  # noqa: ANN001
    records, *_, cocos = genuine
    train = [r for r in records if r.split == "train"]
    picked = sum(int(small_object_mask(r, SMALL_MAX_AREA).sum()) for r in train)
    assert picked == _official(cocos["train"], iscrowd=False)["small"] == 722 - sum(
        1 for a in cocos["train"].dataset["annotations"] if a["iscrowd"] and a["area"] < SMALL_MAX_AREA)
    by_box = sum(int(small_object_mask(replace(r, area=None), SMALL_MAX_AREA).sum()) for r in train)
    assert by_box != picked

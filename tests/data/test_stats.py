import csv
import importlib.util
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import ConfigError, parse
from pipeline.data.boxes import voc_to_xyxy
from pipeline.data.schema import ImageRecord
from pipeline.data.stats import StatsConfig, compute_stats, histogram_rows, to_metrics

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["cat", "bottle"]


def _rec(iid, boxes, labels, split="train", w=100, h=100, difficult=None):
    n = len(labels)
    return ImageRecord(
        iid, f"{iid}.jpg", split, w, h,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int64),
        difficult=np.zeros(n, bool) if difficult is None else np.asarray(difficult, bool),
        iscrowd=np.zeros(n, bool),
    )


@pytest.fixture
def tiny():
    return [
        # cat 50x40=2000 (rel .2, medium); bottle 10x10=100 (rel .01, small); difficult bottle 10x30 (rel .03)
        _rec("a", [[0, 0, 50, 40], [60, 60, 70, 70], [80, 0, 90, 30]], [0, 1, 1], difficult=[0, 0, 1]),
        # 200x100 image: cat 100x100 (rel .5, large); bottle 20x20=400 (rel .02, small)
        _rec("b", [[0, 0, 100, 100], [100, 0, 120, 20]], [0, 1], split="test", w=200),
        _rec("c", [], [], w=50, h=50),
    ]


def test_hand_computed_statistics(tiny):
    s = compute_stats(tiny, CLASSES)
    o = s.overall
    assert (o["images"], o["instances"], o["difficult"], o["crowd"]) == (3, 4, 1, 0)
    assert (o["small_share"], o["medium_share"], o["large_share"]) == (0.5, 0.25, 0.25)
    assert o["mean_rel_area"] == pytest.approx((0.2 + 0.01 + 0.5 + 0.02) / 4)
    assert list(s.per_class) == ["bottle", "cat"]  # ascending by mean relative area
    assert s.per_class["bottle"]["mean_rel_area"] == pytest.approx(0.015)
    assert s.per_class["cat"]["mean_rel_area"] == pytest.approx(0.35)
    assert s.per_class["bottle"]["difficult"] == 1 and s.per_class["bottle"]["small_share"] == 1.0
    assert (s.per_class["cat"]["train_instances"], s.per_class["cat"]["test_instances"]) == (1, 1)
    assert s.splits["train"]["instances"] == 2 and s.splits["train"]["images"] == 2
    assert s.splits["test"]["large_share"] == 0.5 and s.splits["test"]["images"] == 1
    # sqrt areas 44.7, 10, 100, 20 in 8-px bins
    counts = {r["sqrt_area"]: r["count"] for r in histogram_rows(s) if r["count"]}
    assert counts == {8.0: 1, 16.0: 1, 40.0: 1, 96.0: 1}


def test_include_difficult_folds_them_in(tiny):
    s = compute_stats(tiny, CLASSES, StatsConfig(include_difficult=True))
    assert s.per_class["bottle"]["instances"] == 3
    assert s.per_class["bottle"]["mean_rel_area"] == pytest.approx(0.02)


def test_metrics_are_nested_numbers(tiny):
    m = json.loads(json.dumps(to_metrics(compute_stats(tiny, CLASSES + ["dog"]), StatsConfig())))
    assert set(m["per_class"]) == {"bottle", "cat"}  # classes without instances are left out

    def leaves(d):
        for v in d.values():
            yield from leaves(v) if isinstance(v, dict) else [v]

    assert m.pop("size_measure") == "box_area"  # the one string: `dvc metrics show/diff` print it as is
    assert all(isinstance(v, (int, float)) for v in leaves(m))


def test_config_rejects_bad_bin():
    with pytest.raises(ConfigError, match="stats.bin_px"):
        parse(StatsConfig, {"bin_px": 0}, "stats")


def test_stage_writes_all_outputs(tiny, make_set, tmp_path):
    root = make_set(tiny, CLASSES)
    (tmp_path / "params.yaml").write_text("stats:\n  bin_px: 16\n")
    spec = importlib.util.spec_from_file_location("stats_stage", REPO / "stages" / "stats.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    mod.main(["--set", str(root), "--metrics", str(out / "m.json"), "--plots", str(out / "plots"),
              "--figure", str(out / "h.png"), "--params", str(tmp_path / "params.yaml")])
    assert json.loads((out / "m.json").read_text())["overall"]["instances"] == 4
    with open(out / "plots" / "size_histogram.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["sqrt_area"]) for r in rows[:3]] == [0.0, 16.0, 32.0]
    assert sum(int(r["count"]) for r in rows) == 4
    with open(out / "plots" / "per_class.csv") as fh:
        assert [r["class"] for r in csv.DictReader(fh)] == ["bottle", "cat"]
    assert (out / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _voc_records(ann_dir: Path, classes: list[str]) -> list[ImageRecord]:
    """Minimal VOC XML reader for this test (top-level <object>s only, not person parts)."""
    recs = []
    for f in sorted(ann_dir.glob("*.xml")):
        root = ET.parse(f).getroot()
        objs = root.findall("object")
        boxes = [voc_to_xyxy(*(float(o.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))) for o in objs]
        recs.append(ImageRecord(
            f.stem, f"{f.stem}.jpg", "train", int(root.findtext("size/width")), int(root.findtext("size/height")),
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
            labels=np.asarray([classes.index(o.findtext("name").strip()) for o in objs], np.int64),
            difficult=np.asarray([o.findtext("difficult", "0").strip() == "1" for o in objs], bool),
            iscrowd=np.zeros(len(objs), bool),
        ))
    return recs


VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]


def test_genuine_voc2012_bottle_smallest_cat_large(shared_data):
    recs = _voc_records(shared_data / "voc" / "VOCdevkit" / "VOC2012" / "Annotations", VOC_CLASSES)
    s = compute_stats(recs, VOC_CLASSES)
    assert s.overall["images"] == 100 and s.overall["instances"] + s.overall["difficult"] == 273
    ranked = [c for c, row in s.per_class.items() if row["instances"] >= 3]
    assert ranked[0] == "bottle"
    assert "cat" in ranked[-5:]


def test_coco_areas_decide_the_buckets_and_the_measure_is_named(tiny):
    # the same boxes; annotation areas move the 2000-px² cat to small and the 100-px² bottle to medium
    coco = [replace(tiny[0], area=np.array([900.0, 1500.0, 50.0])), replace(tiny[1], area=np.array([9216.0, 300.0])),
            replace(tiny[2], area=np.zeros(0))]
    s = compute_stats(coco, CLASSES)
    assert s.size_measure == "coco_area" and to_metrics(s)["size_measure"] == "coco_area"
    assert [s.overall[b] for b in ("small", "medium", "large")] == [2, 1, 1]  # 900, 300 | 1500 | 9216 (= 96²: large)
    assert s.per_class["cat"]["mean_rel_area"] == pytest.approx(0.35)  # relative area stays the box's
    counts = {r["sqrt_area"]: r["count"] for r in histogram_rows(s) if r["count"]}
    assert counts == {16.0: 1, 24.0: 1, 32.0: 1, 96.0: 1}  # sqrt 30, 38.7, 17.3, 96
    assert compute_stats(tiny, CLASSES).size_measure == "box_area"
    mixed = [coco[0], replace(coco[1], area=np.array([9216.0, np.nan]))]  # e.g. a pasted object: no area
    assert compute_stats(mixed, CLASSES).size_measure == "mixed"

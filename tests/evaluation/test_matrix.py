"""Evaluation matrix end to end on real set directories (JPEGs + annotation tables)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.data.images import ImageError
from pipeline.data.schema import ImageRecord, images_dir, read_records
from pipeline.detector.model import ModelConfig, build_detector
from pipeline.errors import PipelineError
from pipeline.evaluation.infer import predict_set
from pipeline.evaluation.matrix import METRIC_KEYS, evaluate_matrix
from pipeline.evaluation.results import read_results
from pipeline.postprocess import PostprocessConfig

CLASSES = ["bottle", "cat"]
METHODS = {
    "nms": PostprocessConfig("nms"),
    "softnms": PostprocessConfig("soft_linear"),
    "softnms_gauss": PostprocessConfig("soft_gaussian"),
}


def hr_records() -> list[ImageRecord]:
    def r(i, boxes, labels, w=320, h=240):
        n = len(labels)
        return ImageRecord(
            f"im{i}",
            f"im{i}.jpg",
            "test",
            w,
            h,
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(labels, np.int64),
            np.zeros(n, bool),
            np.zeros(n, bool),
        )

    return [
        r(0, [[8, 8, 28, 28], [100, 60, 260, 220]], [0, 1]),  # small bottle, large cat
        r(1, [[40, 40, 120, 100], [200, 20, 220, 44]], [1, 0]),
        r(2, [[160, 120, 200, 170]], [0], w=288, h=256),
        ImageRecord("im3", "im3.jpg", "train", 320, 240),
    ]


def lr_records() -> list[ImageRecord]:
    return [replace(r, width=r.width // 4, height=r.height // 4, boxes=r.boxes / 4) for r in hr_records()]


class OracleDetector(nn.Module):
    """Stand-in detector with the SSD interface that 'detects' the HR ground truth of the
    images in the order they are fed (normalised boxes, so valid for any resolution)."""

    def __init__(self, records: list[ImageRecord], num_classes: int) -> None:
        super().__init__()
        self.config = ModelConfig(input_size=300)
        self.num_classes = num_classes
        self.records, self.next = [r for r in records if r.split == "test"], 0
        self.g = max(len(r) for r in self.records)

    def forward(self, images):
        n = images.shape[0]
        logits = torch.full((n, self.g, self.num_classes + 1), -10.0)
        boxes = torch.zeros((n, self.g, 4))
        for i in range(n):
            r = self.records[(self.next + i) % len(self.records)]
            scale = np.array([r.width, r.height, r.width, r.height], np.float32)
            logits[i, :, 0] = 10.0
            for j, (b, lbl) in enumerate(zip(r.boxes, r.labels, strict=False)):
                logits[i, j, 0], logits[i, j, lbl + 1] = -10.0, 5.0 - j
                boxes[i, j] = torch.from_numpy(b / scale)
        self.next += n
        return logits, boxes

    def decode(self, cls_logits, box_deltas):
        return box_deltas, torch.softmax(cls_logits, -1)[..., 1:]


@pytest.fixture
def sets(make_set):
    return {"lr": make_set(lr_records(), CLASSES, "lr"), "hr": make_set(hr_records(), CLASSES, "hr")}


def test_oracle_scores_perfect_in_hr_frame(sets, tmp_path):
    out = tmp_path / "eval"
    m = evaluate_matrix(
        OracleDetector(hr_records(), 2),
        sets,
        sets["hr"],
        METHODS,
        out,
        batch_size=2,
        pictures=2,
        progress=False,
    )
    for s in ("lr", "hr"):
        for meth in METHODS:
            assert m[f"{s}.{meth}.map"] == pytest.approx(1.0)
            assert m[f"{s}.{meth}.ap50"] == pytest.approx(1.0)
            # Buckets are HR ones: the 160x160 cat is "large" on the 80x60 LR image too.
            assert m[f"{s}.{meth}.map_large"] == pytest.approx(1.0)
            assert m[f"{s}.{meth}.map_small"] == pytest.approx(1.0)
    assert set(m) == {f"{s}.{meth}.{k}" for s in sets for meth in METHODS for k in METRIC_KEYS}
    assert json.loads((out / "metrics.json").read_text()) == m
    gt = json.loads((out / "gt_coco.json").read_text())
    lr_dets = read_results(out / "detections" / "lr_nms.json", gt)
    assert any(d["bbox"] == pytest.approx([100, 60, 160, 160], abs=0.01) for d in lr_dets)  # HR pixels
    header = (out / "pr" / "hr_softnms.csv").read_text().splitlines()[0]
    assert header == "recall,bottle,cat"
    # long form for dvc plots: the mean + the pictured classes (auto: all 2, smallest first), 101 points each
    rows = (out / "pr_plots" / "hr_softnms.csv").read_text().splitlines()
    assert rows[0] == "recall,precision,class" and len(rows) == 1 + 3 * 101
    assert [r.split(",")[2] for r in rows[1::101]] == ["mean", "bottle", "cat"]
    assert rows[101] == "1.00,1.000000,mean"  # the oracle: precision 1 up to recall 1
    sets_rows = (out / "pr_sets.csv").read_text().splitlines()
    assert sets_rows[0] == "recall,precision,set,method" and len(sets_rows) == 1 + 2 * 3 * 101
    assert (out / "per_class_ap.csv").read_text().count("\n") == 1 + 2 * 3 * 2
    pngs = sorted(p.name for p in (out / "figures").iterdir())
    assert "pr_lr_softnms_gauss.png" in pngs and sum(p.startswith("detections_") for p in pngs) == 2


def test_real_detector_smoke_and_predict_set(sets, tmp_path):
    torch.manual_seed(0)
    model = build_detector(ModelConfig(width=0.125), num_classes=2)
    out = tmp_path / "eval"
    m = evaluate_matrix(
        model,
        {"hr": sets["hr"]},
        sets["hr"],
        {"nms": METHODS["nms"]},
        out,
        batch_size=3,
        pictures=1,
        coco_backend="faster",
        progress=False,
    )
    assert all(v is None or 0.0 <= v <= 1.0 for v in m.values())
    dets = predict_set(
        model, sets["lr"], batch_size=2, device="cpu", post_cfg=PostprocessConfig("soft_gaussian", top_k=7)
    )
    recs, _ = read_records(sets["lr"], "test")
    assert set(dets) == {r.image_id for r in recs}
    for r in recs:
        d = dets[r.image_id]
        assert 0 < len(d) <= 7
        assert (d.boxes[:, 2] <= r.width + 1e-3).all() and (d.boxes[:, 3] <= r.height + 1e-3).all()


def test_missing_set_and_mismatched_sets(sets, tmp_path):
    out = tmp_path / "eval"
    model = OracleDetector(hr_records(), 2)
    with pytest.raises(FileNotFoundError, match="evaluation set 'sr' not found"):
        evaluate_matrix(model, {"sr": tmp_path / "nope", **sets}, sets["hr"], METHODS, out, progress=False)
    with pytest.raises(ValueError, match="model has 3 classes"):
        evaluate_matrix(OracleDetector(hr_records(), 3), sets, sets["hr"], METHODS, out, progress=False)
    assert not out.exists()


def test_error_midway_leaves_previous_outputs(sets, tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text('{"old": 1}\n')
    (images_dir(sets["hr"]) / "im2.jpg").write_bytes(b"not a jpeg")  # fails on the second set, after lr
    with pytest.raises(ImageError, match="im2.jpg"):
        evaluate_matrix(OracleDetector(hr_records(), 2), sets, sets["hr"], METHODS, out, progress=False)
    assert json.loads((out / "metrics.json").read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval", "hr", "lr"]  # no temp dir left behind


def test_empty_detections_are_valid(sets, tmp_path):
    class Blind(OracleDetector):
        def forward(self, images):
            logits, boxes = super().forward(images)
            logits[..., 0] = 50.0
            return logits, boxes

    m = evaluate_matrix(
        Blind(hr_records(), 2),
        {"hr": sets["hr"]},
        sets["hr"],
        METHODS,
        tmp_path / "e",
        pictures=1,
        progress=False,
    )
    assert m["hr.nms.map"] == 0.0 and m["hr.softnms.coco_ap"] == 0.0
    assert read_results(tmp_path / "e" / "detections" / "hr_nms.json") == []


def test_checkpoint_of_other_variant_is_rejected(tmp_path):
    from pipeline.detector.checkpoint import CheckpointMismatchError, save_detector
    from pipeline.evaluation.infer import load_model_for_eval

    ckpt = tmp_path / "model.pt"
    save_detector(
        ckpt, build_detector(ModelConfig(variant="shallow", width=0.125), num_classes=2, init_backbone=False),
        extra={"classes": ["cat", "dog"]},
    )
    with pytest.raises(CheckpointMismatchError, match="'shallow'.*'ssd'"):
        load_model_for_eval(ckpt, ModelConfig(variant="ssd", width=0.125), classes=2)
    model = load_model_for_eval(ckpt, ModelConfig(variant="shallow", width=0.125), classes=["cat", "dog"])
    assert model.config.variant == "shallow"


@pytest.mark.parametrize(
    ("set_classes", "message"),
    [
        (["dog", "cat"], r"class 0 is 'cat' in the checkpoint but 'dog' in the set"),
        (["cat", "bird"], r"class 1 is 'dog' in the checkpoint but 'bird' in the set"),
        (["cat", "dog", "bird"], r"trained on 2 classes, the set has 3"),
    ],
)
def test_checkpoint_classes_must_match_the_set_in_name_and_order(tmp_path, set_classes, message):
    from pipeline.detector.checkpoint import CheckpointMismatchError, save_detector
    from pipeline.evaluation.infer import check_class_names, load_model_for_eval

    cfg = ModelConfig(variant="ssd", width=0.125)
    ckpt = tmp_path / "model.pt"
    save_detector(ckpt, build_detector(cfg, num_classes=2, init_backbone=False), extra={"classes": ["cat", "dog"]})
    with pytest.raises(CheckpointMismatchError, match=message):
        check_class_names(["cat", "dog"], set_classes, str(ckpt))
    if len(set_classes) == 2:
        with pytest.raises(CheckpointMismatchError, match=message):
            load_model_for_eval(ckpt, cfg, classes=set_classes)
    unnamed = tmp_path / "unnamed.pt"
    save_detector(unnamed, build_detector(cfg, num_classes=2, init_backbone=False))
    with pytest.raises(CheckpointMismatchError, match="records no class names"):
        load_model_for_eval(unnamed, cfg, classes=["cat", "dog"])


def test_inputs_are_checked_before_the_evaluation_starts(sets, tmp_path):
    """A checkpoint trained with the classes in another order is refused, not scored with swapped labels."""
    from pipeline.detector.checkpoint import CheckpointMismatchError, save_detector
    from pipeline.evaluation.infer import check_evaluation_inputs
    from pipeline.runstate import CheckpointError

    cfg = ModelConfig(variant="ssd", width=0.125)
    model = build_detector(cfg, num_classes=2, init_backbone=False)
    good, swapped = tmp_path / "good.pt", tmp_path / "swapped.pt"
    save_detector(good, model, extra={"classes": CLASSES})
    save_detector(swapped, model, extra={"classes": CLASSES[::-1]})
    check_evaluation_inputs(good, sets, sets["hr"], cfg)
    with pytest.raises(CheckpointMismatchError, match="class 0 is 'cat' in the checkpoint but 'bottle'"):
        check_evaluation_inputs(swapped, sets, sets["hr"], cfg)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        check_evaluation_inputs(tmp_path / "none.pt", sets, sets["hr"], cfg)
    with pytest.raises(PipelineError, match="'sr' not found"):
        check_evaluation_inputs(good, {**sets, "sr": tmp_path / "nowhere"}, sets["hr"], cfg)


def test_undefined_metrics_are_null_never_minus_one(make_set, tmp_path):
    """No large object and no 'cat' in the test split: those metrics are null in every file, not -1."""
    small_only = [
        ImageRecord("im0", "im0.jpg", "test", 320, 240, np.asarray([[8, 8, 28, 28]], np.float32),
                    np.asarray([0]), np.zeros(1, bool), np.zeros(1, bool)),
        ImageRecord("im1", "im1.jpg", "test", 320, 240, np.asarray([[50, 50, 70, 66]], np.float32),
                    np.asarray([0]), np.zeros(1, bool), np.zeros(1, bool)),
    ]  # fmt: skip
    hr = make_set(small_only, CLASSES, "hr")
    out = tmp_path / "eval"
    m = evaluate_matrix(OracleDetector(small_only, 2), {"hr": hr}, hr, {"nms": METHODS["nms"]}, out,
                        pictures=0, progress=False)
    assert m["hr.nms.map"] == pytest.approx(1.0)
    for k in ("map_large", "map_medium", "ap_large", "ap_medium", "ar_large"):
        assert m[f"hr.nms.{k}"] is None, k
    written = json.loads((out / "metrics.json").read_text())
    assert written == m and -1 not in written.values() and written["hr.nms.ap_large"] is None
    cat = json.loads((out / "per_class_ap.json").read_text())["hr"]["nms"]["cat"]
    assert cat == {"ap": None, "ap_07": None, "ap_small": None, "npos": 0}
    assert "hr,nms,cat,,,,0" in (out / "per_class_ap.csv").read_text().splitlines()


def test_pr_classes_auto_pictures_the_smallest_and_a_list_is_checked(sets, tmp_path):
    from pipeline.evaluation.classes import smallest_classes

    gt = json.loads(json.dumps({"images": [{"id": 1, "width": 100, "height": 100}],
                                "categories": [{"id": 1, "name": "big"}, {"id": 2, "name": "tiny"}],
                                "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50]},
                                                {"image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5]}]}))
    assert smallest_classes(gt, 1) == ["tiny"] and smallest_classes(gt, 5) == ["tiny", "big"]
    out = tmp_path / "eval"
    with pytest.raises(ValueError, match=r"evaluate.pr_classes: 'pottedplant' is not a class .*\['bottle', 'cat'\]"):
        evaluate_matrix(OracleDetector(hr_records(), 2), sets, sets["hr"], METHODS, out,
                        pr_classes=["cat", "pottedplant"], progress=False)
    assert not out.exists()  # refused before any work
    evaluate_matrix(OracleDetector(hr_records(), 2), {"hr": sets["hr"]}, sets["hr"], {"nms": METHODS["nms"]},
                    out, pr_classes=["cat"], pictures=0, progress=False)
    classes = {r.split(",")[2] for r in (out / "pr_plots" / "hr_nms.csv").read_text().splitlines()[1:]}
    assert classes == {"mean", "cat"}


def test_bootstrap_file_pairs_every_result_with_its_interval_and_comparisons(sets, tmp_path):
    from pipeline.evaluation.config import BootstrapConfig

    out = tmp_path / "eval"
    m = evaluate_matrix(OracleDetector(hr_records(), 2), sets, sets["hr"], METHODS, out, pictures=0,
                        progress=False, bootstrap=BootstrapConfig(resamples=100))
    doc = json.loads((out / "bootstrap.json").read_text())
    assert doc["resamples"] == 100 and doc["n_images"] == sum(r.split == "test" for r in hr_records())
    assert doc["methods"] == {"nms": "nms", "soft": "softnms"}
    for s in sets:
        for meth in METHODS:
            res = doc["results"][f"{s}.{meth}.map"]
            assert res["value"] == pytest.approx(m[f"{s}.{meth}.map"], abs=1e-6)
            assert res["lo"] <= res["value"] <= res["hi"] and len(res["samples"]) == 100
    effects = {(e["effect"], e["metric"]): e for e in doc["effects"]}
    assert effects[("HR − LR", "map")]["value"] == 0.0  # the oracle is perfect on both
    assert ("SR − LR", "map") not in effects  # no SR set evaluated: no comparison
    evaluate_matrix(OracleDetector(hr_records(), 2), sets, sets["hr"], METHODS, tmp_path / "off", pictures=0,
                    progress=False, bootstrap=BootstrapConfig(resamples=0))
    assert json.loads((tmp_path / "off" / "bootstrap.json").read_text())["results"] == {}

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.augment.copy_paste import (
    CopyPasteConfig,
    copy_paste_image,
    copy_paste_set,
    image_rng,
    own_patches,
    small_object_mask,
)
from pipeline.augment.paste import crop_box, feather_alpha, intersects, rescale_patch
from pipeline.config import ConfigError, parse
from pipeline.data.schema import ImageRecord, read_records, table_path
from tests.dask_helpers import dask_tasks_run

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["bird", "bottle", "car"]


def _rec(iid, boxes, labels, split="train", w=160, h=120, suffix="png", difficult=None):
    n = len(labels)
    return ImageRecord(
        iid, f"{iid}.{suffix}", split, w, h,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int64),
        difficult=np.zeros(n, bool) if difficult is None else np.asarray(difficult, bool),
        iscrowd=np.zeros(n, bool),
    )


def _check_geometry(rec: ImageRecord, n_orig: int) -> None:
    b = rec.boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= rec.width).all() and (b[:, 3] <= rec.height).all()
    for i in range(n_orig, len(b)):  # each paste vs. every original box and every other paste
        others = np.delete(b, i, axis=0)
        assert not intersects(b[i], others), f"paste {b[i]} overlaps"


def test_pastes_are_free_inside_and_pixel_exact():
    img = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    rec = _rec("a", [[10, 10, 20, 18], [100.5, 40.2, 121.7, 62], [30, 60, 90, 110], [140, 5, 150, 15]], [0, 1, 2, 1],
               difficult=[0, 0, 0, 1])
    cfg = CopyPasteConfig(probability=1.0, copies_per_object=3)
    out, new, pastes, failed = copy_paste_image(img, rec, image_rng(0, "a"), cfg)
    assert len(pastes) + failed == 2 * 3  # two copyable small objects (the 60x50 one is large, one is difficult)
    assert len(pastes) >= 4
    assert len(new) == len(rec) + len(pastes)
    np.testing.assert_array_equal(new.boxes[: len(rec)], rec.boxes)
    assert not new.difficult[len(rec):].any() and not new.iscrowd[len(rec):].any()
    _check_geometry(new, len(rec))
    for p, label in zip(pastes, new.labels[len(rec):], strict=True):
        x0, y0, x1, y1 = p.source_crop
        expected = rescale_patch(img[y0:y1, x0:x1], p.scale)
        bx0, by0, bx1, by1 = (int(v) for v in p.box)
        assert (bx1 - bx0, by1 - by0) == (expected.shape[1], expected.shape[0])
        assert cfg.scale_min <= p.scale <= cfg.scale_max and label == p.label
        np.testing.assert_array_equal(out[by0:by1, bx0:bx1], expected)
    # everything outside the pasted boxes is untouched
    mask = np.ones(img.shape[:2], bool)
    for p in pastes:
        bx0, by0, bx1, by1 = (int(v) for v in p.box)
        mask[by0:by1, bx0:bx1] = False
    np.testing.assert_array_equal(out[mask], img[mask])


def test_no_room_means_failed_placements_not_overlaps():
    img = np.zeros((40, 40, 3), np.uint8)
    rec = _rec("a", [[0, 0, 40, 30], [0, 30, 8, 40]], [2, 0], w=40, h=40)  # only a 32x10 strip is free
    cfg = CopyPasteConfig(probability=1.0, copies_per_object=5, scale_min=1.0, scale_max=1.0, max_attempts=5)
    _, new, pastes, failed = copy_paste_image(img, rec, image_rng(3, "a"), cfg)
    assert len(pastes) + failed == 5 and failed >= 1
    _check_geometry(new, len(rec))


def test_probability_zero_and_crop_rounding():
    img = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    rec = _rec("a", [[2, 2, 6, 6]], [0], w=30, h=20)
    out, new, pastes, _ = copy_paste_image(img, rec, image_rng(0, "a"), CopyPasteConfig(probability=0.0))
    assert out is img and new is rec and pastes == []
    patch, crop = crop_box(img, np.array([2.4, 3.6, 5.1, 7.0]))
    assert crop == (2, 3, 6, 7) and patch.shape == (4, 4, 3)


def test_gaussian_feathering():
    a = feather_alpha(20, 20, 1.0)
    # outermost pixel (centre 0.5 px inside the edge) ~ Phi(0.5 / sigma) = 0.69; corner ~ its square
    assert a[10, 10] == pytest.approx(1.0, abs=1e-3) and 0.62 < a[10, 0] < 0.76
    assert a[0, 0] == pytest.approx(a[10, 0] ** 2, abs=0.02)
    img = np.full((60, 60, 3), 10, np.uint8)
    img[5:15, 5:15] = 250
    rec = _rec("a", [[5, 5, 15, 15]], [0], w=60, h=60)
    cfg = CopyPasteConfig(probability=1.0, blend="gaussian", blend_radius=1.5, scale_min=1.0, scale_max=1.0)
    out, _, pastes, _ = copy_paste_image(img, rec, image_rng(0, "a"), cfg)
    x0, y0, x1, y1 = (int(v) for v in pastes[0].box)
    region = out[y0:y1, x0:x1, 0].astype(int)
    edge = feather_alpha(10, 10, 1.5)[5, 0]
    assert region[5, 5] > 240 and 0.55 < edge < 0.7  # solid centre, blended edge
    assert region[5, 0] == pytest.approx(10 + 240 * edge, abs=1.01)


@pytest.fixture
def src_set(make_set):
    rng = np.random.default_rng(0)
    recs = []
    for i in range(6):
        boxes = [[10 + 20 * j, 10 + 15 * j, 10 + 20 * j + rng.integers(6, 20), 10 + 15 * j + rng.integers(6, 20)] for j in range(3)]
        recs.append(_rec(f"im{i}", boxes + [[100, 60, 150, 110]], [0, 1, 0, 2], suffix="jpg"))
    recs.append(_rec("t0", [[5, 5, 15, 15]], [1], split="test"))
    recs.append(_rec("t1", [[5, 5, 100, 100]], [2], split="test", suffix="jpg"))
    return make_set(recs, CLASSES, name="hr")


def test_set_is_reproducible_order_independent_and_seed_dependent(src_set, tmp_path):
    cfg = CopyPasteConfig(probability=0.7, copies_per_object=2, cross_image_objects=2, workers=1)
    m1, pairs = copy_paste_set(src_set, tmp_path / "a", cfg, seed=5, progress=False)
    m2, _ = copy_paste_set(src_set, tmp_path / "b", CopyPasteConfig(**{**cfg.__dict__, "workers": 2}), seed=5, progress=False)
    m3, _ = copy_paste_set(src_set, tmp_path / "c", cfg, seed=6, progress=False)
    assert m1 == m2 and m1["pastes"] > 0 and m1["bank_patches"] == 18
    assert table_path(tmp_path / "a").read_bytes() == table_path(tmp_path / "b").read_bytes()
    for f in (src_set / "images").iterdir():
        assert (tmp_path / "a" / "images" / f.name).read_bytes() == (tmp_path / "b" / "images" / f.name).read_bytes()
    assert table_path(tmp_path / "a").read_bytes() != table_path(tmp_path / "c").read_bytes()

    before, classes = read_records(src_set)
    after, classes2 = read_records(tmp_path / "a")
    assert classes2 == classes and [r.image_id for r in after] == [r.image_id for r in before]
    for b, a in zip(before, after, strict=True):
        if b.split == "test":  # test split untouched: same bytes, same annotations
            assert (tmp_path / "a" / "images" / b.file_name).read_bytes() == (src_set / "images" / b.file_name).read_bytes()
            np.testing.assert_array_equal(a.boxes, b.boxes)
        else:
            _check_geometry(a, len(b))
    # the pool's fast path (no decode when not augmented) follows copy_paste_image exactly
    from pipeline.augment.copy_paste import build_bank
    from pipeline.data.images import read_image

    bank = build_bank(src_set, before, cfg, seed=5, progress=False)
    for b, a in zip(before[:6], after[:6], strict=True):
        _, ref, _, _ = copy_paste_image(read_image(src_set / "images" / b.file_name), b, image_rng(5, b.image_id), cfg, bank)
        np.testing.assert_array_equal(a.boxes, ref.boxes)
    assert m1["images_augmented"] == len(pairs) and m1["instances_after"] - m1["instances_before"] == m1["pastes"]
    assert m1["small_instances_after"] > m1["small_instances_before"]


def test_cross_image_sources_come_from_other_images(src_set):
    from pipeline.augment.copy_paste import build_bank
    from pipeline.data.images import read_image

    recs, _ = read_records(src_set)
    bank = build_bank(src_set, recs, CopyPasteConfig(workers=1), seed=0, progress=False)
    img = read_image(src_set / "images" / "im0.jpg")
    cfg = CopyPasteConfig(probability=1.0, copies_per_object=1, cross_image_objects=3)
    out, _, pastes, _ = copy_paste_image(img, recs[0], image_rng(0, "im0"), cfg, bank)
    foreign = [p for p in pastes if p.source_image_id != "im0"]
    assert len(foreign) >= 1
    by_key = {(p.image_id, p.crop): p for p in bank}
    for p in foreign:
        expected = rescale_patch(by_key[(p.source_image_id, p.source_crop)].pixels, p.scale)
        x0, y0, x1, y1 = (int(v) for v in p.box)
        np.testing.assert_array_equal(out[y0:y1, x0:x1], expected)
    assert len(own_patches(img, recs[0], 1024.0)) == 3


def test_stage_writes_set_metrics_and_figure(src_set, tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 1\naugment:\n  probability: 1.0\n  workers: 1\n")
    spec = importlib.util.spec_from_file_location("augment_stage", REPO / "stages" / "augment.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    mod.main(["--input", str(src_set), "--output", str(out / "set"), "--metrics", str(out / "m.json"),
              "--figure", str(out / "f.png"), "--params", str(tmp_path / "params.yaml")])
    m = json.loads((out / "m.json").read_text())
    assert m["train_images"] == 6 and m["images_augmented"] == 6 and m["pastes"] > 0
    assert (out / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert len(read_records(out / "set")[0]) == 8


def test_config_validation():
    with pytest.raises(ConfigError, match="augment.scale_min"):
        parse(CopyPasteConfig, {"scale_min": 2.0, "scale_max": 1.0}, "augment")
    with pytest.raises(ConfigError, match="augment.blend"):
        parse(CopyPasteConfig, {"blend": "poisson"}, "augment")
    with pytest.raises(ConfigError, match="augment.probability"):
        parse(CopyPasteConfig, {"probability": 1.5}, "augment")


def test_dask_cluster_gives_the_same_set(src_set, tmp_path, dask_cluster):
    cfg = CopyPasteConfig(probability=0.7, copies_per_object=2, cross_image_objects=2, workers=1)
    m1, _ = copy_paste_set(src_set, tmp_path / "local", cfg, seed=5, progress=False)
    on_cluster = CopyPasteConfig(**{**cfg.__dict__, "cluster": dask_cluster})
    before = dask_tasks_run(dask_cluster, "augment")
    m2, _ = copy_paste_set(src_set, tmp_path / "dask", on_cluster, seed=5, progress=False)
    assert dask_tasks_run(dask_cluster, "augment") - before == len(read_records(src_set)[0])
    assert m1 == m2 and m1["pastes"] > 0
    assert table_path(tmp_path / "local").read_bytes() == table_path(tmp_path / "dask").read_bytes()
    for f in (src_set / "images").iterdir():
        assert (tmp_path / "local" / "images" / f.name).read_bytes() == (tmp_path / "dask" / "images" / f.name).read_bytes()


def test_coco_small_is_the_annotation_area_box_area_elsewhere(make_set, tmp_path):
    # 40x40 box (1600 px², medium by box) whose mask area is 500: COCO calls it small, so it is copied;
    # 20x20 box (400 px²) whose area is 2000 is not small; NaN area (none given): the box area decides.
    boxes = [[10, 10, 50, 50], [70, 10, 90, 30], [110, 10, 130, 30], [10, 70, 110, 110]]
    coco = replace(_rec("c", boxes, [0, 1, 2, 0], suffix="jpg"), area=np.array([500.0, 2000.0, np.nan, 3000.0]))
    assert small_object_mask(coco, 1024.0).tolist() == [True, False, True, False]
    assert small_object_mask(replace(coco, area=None), 1024.0).tolist() == [False, True, True, False]  # VOC: box
    test = replace(_rec("t", [[5, 5, 15, 15]], [1], split="test", suffix="jpg"), area=np.array([80.0]))
    cfg = CopyPasteConfig(probability=1.0, copies_per_object=1, scale_min=0.5, scale_max=0.5, workers=1)
    metrics, ((before, after),) = copy_paste_set(make_set([coco, test], CLASSES), tmp_path / "aug", cfg,
                                                 progress=False)
    assert metrics["pastes"] == 2 and metrics["small_instances_before"] == 2
    np.testing.assert_allclose(after.boxes[4:, 2] - after.boxes[4:, 0], [20, 10])  # the 40 px and the 20 px box, halved
    assert np.isnan(after.area[4:]).all() and metrics["small_instances_after"] == 4  # pasted: box areas 400, 100

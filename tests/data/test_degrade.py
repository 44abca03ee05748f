import importlib.util
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import ConfigError, parse
from pipeline.data.degrade import (
    MIN_EXTENT,
    DegradeConfig,
    degrade_record,
    degrade_set,
    fit_boxes,
    lr_size,
    resize_image,
)
from pipeline.data.images import ImageError, read_image
from pipeline.data.schema import ImageRecord, read_records, table_path
from tests.dask_helpers import dask_tasks_run

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["cat", "bottle"]


def _rec(iid, boxes, labels, split="train", w=100, h=100, suffix="jpg"):
    n = len(labels)
    return ImageRecord(
        iid, f"{iid}.{suffix}", split, w, h,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int64),
        difficult=np.arange(n) % 2 == 1,
        iscrowd=np.zeros(n, bool),
    )


@pytest.mark.parametrize(
    "w,h,scale,expected",
    [(500, 375, 4, (125, 94)), (10, 10, 4, (3, 3)), (37, 23, 4, (9, 6)), (3, 2, 4, (1, 1)), (1, 1, 4, (1, 1)), (9, 6, 3, (3, 2))],
)
def test_lr_size_rounds_half_up_and_never_below_one(w, h, scale, expected):
    assert lr_size(w, h, scale) == expected


def test_boxes_scaled_exactly_per_axis():
    # 500x375 -> 125x94: sx = 0.25, sy = 94/375
    r = degrade_record(_rec("a", [[100, 75, 300, 375], [0, 0, 4, 4]], [0, 1], w=500, h=375), 4)
    assert (r.width, r.height) == (125, 94)
    expected = np.array([[25, 75 * 94 / 375, 75, 94], [0, 0, 1, 4 * 94 / 375]], np.float32)
    np.testing.assert_allclose(r.boxes, expected, rtol=0, atol=1e-5)
    assert r.boxes.dtype == np.float32
    np.testing.assert_array_equal(r.labels, [0, 1])
    np.testing.assert_array_equal(r.difficult, [False, True])


def test_sub_pixel_boxes_are_kept_and_stay_non_degenerate():
    # a 2-px object becomes 0.5 px: kept as is; a 0.02-px sliver at the right edge is widened to MIN_EXTENT inside
    r = degrade_record(_rec("a", [[10, 10, 12, 12], [99.99, 0, 100, 8]], [0, 0]), 4)
    np.testing.assert_allclose(r.boxes[0], [2.5, 2.5, 3.0, 3.0])
    b = r.boxes[1]
    assert b[2] <= 25 and b[2] - b[0] == pytest.approx(MIN_EXTENT, abs=1e-5) and b[3] == 2
    f = fit_boxes(np.array([[-1, 3, 5, 3]], np.float32), 4, 4)
    assert f[0, 0] == 0 and f[0, 2] == 4 and f[0, 3] - f[0, 1] == pytest.approx(MIN_EXTENT, abs=1e-5)


def test_nearest_kernel_samples_pixel_centres():
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_image(img, (16, 12), "nearest"), img[2::4, 2::4])


def test_antialias_filters_before_subsampling():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, ::4] = 255  # one bright column in four: mean 63.75
    aa = resize_image(img, (16, 16), "bicubic", antialias=True).astype(float)
    raw = resize_image(img, (16, 16), "bicubic", antialias=False).astype(float)
    assert abs(aa.mean() - 63.75) < 8 and aa.std() < 8
    assert raw.mean() < 20  # point-sampled cubic misses the bright columns: aliasing
    box = resize_image(img, (16, 16), "area").astype(float)
    assert abs(box.mean() - 63.75) < 1


def test_config_validation_names_key():
    assert parse(DegradeConfig, {"scale": 4}, "degrade").scale == 4.0
    with pytest.raises(ConfigError, match="degrade.kernel"):
        parse(DegradeConfig, {"kernel": "spline"}, "degrade")
    with pytest.raises(ConfigError, match="degrade.scale"):
        parse(DegradeConfig, {"scale": 0.5}, "degrade")


@pytest.fixture
def hr_set(make_set):
    recs = [
        _rec("a", [[3, 5, 20, 17], [30, 1, 33, 4]], [0, 1], w=37, h=23),  # non-divisible size
        _rec("b", [[0, 0, 64, 48]], [1], split="test", w=64, h=48, suffix="png"),
        _rec("c", [], [], w=40, h=40),
    ]
    return make_set(recs, CLASSES, name="hr"), recs


def test_degrade_set_serial_equals_parallel_stage(hr_set, tmp_path):
    hr, recs = hr_set
    serial = tmp_path / "lr1"
    summary = degrade_set(hr, serial, DegradeConfig(workers=1), progress=False)
    assert summary == {"images": 3, "objects": 3, "sub_pixel_objects": 1}
    out, classes = read_records(serial)
    assert classes == CLASSES and [r.file_name for r in out] == ["a.jpg", "b.png", "c.jpg"]
    assert [r.split for r in out] == ["train", "test", "train"]
    for r, src in zip(out, recs, strict=True):
        assert (r.width, r.height) == lr_size(src.width, src.height, 4)
        assert read_image(serial / "images" / r.file_name).shape == (r.height, r.width, 3)
        np.testing.assert_allclose(
            r.boxes, src.boxes * np.array([r.width / src.width, r.height / src.height] * 2, np.float32), atol=1e-5
        )

    (tmp_path / "params.yaml").write_text("degrade:\n  scale: 4\n  workers: 2\n")
    spec = importlib.util.spec_from_file_location("degrade_stage", REPO / "stages" / "degrade.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    parallel = tmp_path / "lr2"
    mod.main(["--input", str(hr), "--output", str(parallel), "--params", str(tmp_path / "params.yaml")])
    assert table_path(parallel).read_bytes() == table_path(serial).read_bytes()
    for name in ("a.jpg", "b.png", "c.jpg"):
        assert (parallel / "images" / name).read_bytes() == (serial / "images" / name).read_bytes()


def test_kernel_param_changes_pixels(hr_set, tmp_path):
    hr, _ = hr_set
    degrade_set(hr, tmp_path / "bic", DegradeConfig(workers=1, kernel="bicubic"), progress=False)
    degrade_set(hr, tmp_path / "nn", DegradeConfig(workers=1, kernel="nearest"), progress=False)
    a, b = (read_image(tmp_path / d / "images" / "a.jpg") for d in ("bic", "nn"))
    assert a.shape == b.shape == (6, 9, 3) and not np.array_equal(a, b)


def test_missing_image_names_file_and_writes_nothing(hr_set, tmp_path):
    hr, _ = hr_set
    (hr / "images" / "b.png").unlink()
    with pytest.raises(ImageError, match=r"b\.png: image file not found"):
        degrade_set(hr, tmp_path / "lr", DegradeConfig(workers=1), progress=False)
    assert not (tmp_path / "lr").exists() and list(tmp_path.glob(".lr*")) == []


def test_wrong_image_size_fails_in_worker_and_keeps_old_output(hr_set, tmp_path):
    hr, _ = hr_set
    out = tmp_path / "lr"
    degrade_set(hr, out, DegradeConfig(workers=1), progress=False)
    before = table_path(out).read_bytes()
    from pipeline.data.images import write_image

    write_image(hr / "images" / "a.jpg", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ImageError, match=r"a\.jpg: image is 10x10 but the annotation table says 37x23"):
        degrade_set(hr, out, DegradeConfig(workers=2), progress=False)
    assert table_path(out).read_bytes() == before and list(tmp_path.glob(".lr*")) == []


def test_degrade_stage_on_a_dask_cluster_equals_serial(hr_set, tmp_path, dask_cluster):
    hr, _ = hr_set
    degrade_set(hr, tmp_path / "serial", DegradeConfig(workers=1), progress=False)
    (tmp_path / "params.yaml").write_text(f"degrade:\n  scale: 4\n  cluster: {dask_cluster}\n")
    spec = importlib.util.spec_from_file_location("degrade_stage", REPO / "stages" / "degrade.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    before = dask_tasks_run(dask_cluster, "degrade")
    mod.main(["--input", str(hr), "--output", str(tmp_path / "dask"), "--params", str(tmp_path / "params.yaml")])
    assert dask_tasks_run(dask_cluster, "degrade") - before == 3  # one task per image, on the cluster
    assert table_path(tmp_path / "dask").read_bytes() == table_path(tmp_path / "serial").read_bytes()
    for name in ("a.jpg", "b.png", "c.jpg"):
        assert (tmp_path / "dask" / "images" / name).read_bytes() == (tmp_path / "serial" / "images" / name).read_bytes()

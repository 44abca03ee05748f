"""SSD augmentation keeps boxes consistent with pixels, in range and reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.detector.transforms import (
    Compose,
    Expand,
    HorizontalFlip,
    MinIoURandomCrop,
    PhotometricDistort,
    ResizeNormalize,
    build_transform,
    eval_transform,
    ssd_train_transform,
)

RED = np.array([255, 0, 0], np.uint8)
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


def _scene(rng: np.random.Generator, h: int = 120, w: int = 180, n: int = 3):
    """Grey image with ``n`` non-overlapping filled rectangles, object i in COLOURS[i]
    (one per third of the width); boxes in pixel xyxy."""
    img = np.full((h, w, 3), 90, np.uint8)
    boxes = []
    cell = w // n
    for i in range(n):
        bw, bh = rng.integers(12, cell - 4), rng.integers(12, h // 2)
        x0, y0 = i * cell + rng.integers(0, cell - bw), rng.integers(0, h - bh)
        img[y0 : y0 + bh, x0 : x0 + bw] = COLOURS[i]
        boxes.append([x0, y0, x0 + bw, y0 + bh])
    return img, np.array(boxes, np.float32), np.arange(n, dtype=np.int64)


def _colour_mask(img: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return (np.abs(img.astype(int) - colour.astype(int)) < 60).all(-1)


def _red_mask(img: np.ndarray) -> np.ndarray:
    return _colour_mask(img, RED)


def _extent(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("seed", range(10))
def test_geometric_transforms_keep_boxes_on_their_objects(seed: int) -> None:
    """After expand, min-IoU crop and flip each kept box is exactly the extent of its
    object's pixels (objects are drawn in distinct colours)."""
    rng = np.random.default_rng(seed)
    img, boxes, labels = _scene(rng)
    for t in (Expand(p=1.0), MinIoURandomCrop(), HorizontalFlip(p=1.0)):
        img, boxes, labels = t(img, boxes, labels, rng)
        assert len(boxes) == len(labels) and img.dtype == np.uint8
        for b, lab in zip(boxes, labels, strict=False):
            np.testing.assert_allclose(b, _extent(_colour_mask(img, COLOURS[lab])), atol=1e-4,
                                       err_msg=type(t).__name__)


def test_flip_mirrors_box_coordinates() -> None:
    img = np.zeros((10, 20, 3), np.uint8)
    img[2:5, 1:4] = RED
    out, boxes, _ = HorizontalFlip(p=1.0)(img, np.array([[1, 2, 4, 5]], np.float32), np.zeros(1, np.int64),
                                      np.random.default_rng(0))
    np.testing.assert_array_equal(boxes, [[16, 2, 19, 5]])
    assert _red_mask(out)[2:5, 16:19].all() and _red_mask(out).sum() == 9


def test_expand_fills_with_mean_and_shifts_boxes() -> None:
    rng = np.random.default_rng(3)
    img, boxes, labels = _scene(rng, n=1)
    out, ob, _ = Expand(p=1.0, max_ratio=4.0)(img, boxes, labels, rng)
    assert out.shape[0] >= img.shape[0] and out.shape[1] >= img.shape[1]
    assert np.allclose(ob[:, 2:] - ob[:, :2], boxes[:, 2:] - boxes[:, :2])
    assert (out[0, 0] == np.array([124, 116, 104])).all() or out.shape[:2] == img.shape[:2]


def test_min_iou_crop_keeps_only_objects_with_centre_inside() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    boxes = np.array([[0, 0, 20, 20], [70, 70, 100, 100]], np.float32)
    crop = MinIoURandomCrop(min_ious=(0.0,), min_scale=0.3)
    for seed in range(30):
        out, ob, ol = crop(img, boxes, np.array([0, 1]), np.random.default_rng(seed))
        h, w = out.shape[:2]
        assert len(ob) >= 1
        assert (ob >= 0).all() and (ob[:, 2] <= w).all() and (ob[:, 3] <= h).all()
        assert set(ol.tolist()) <= {0, 1}


@pytest.mark.parametrize("seed", range(20))
def test_ssd_recipe_outputs_normalised_boxes_in_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    img, boxes, labels = _scene(rng, n=3)
    out, ob, ol = ssd_train_transform(64)(img, boxes, labels, rng)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert ob.dtype == np.float32 and ((ob >= 0) & (ob <= 1)).all()
    assert (ob[:, 2:] > ob[:, :2]).all() and len(ob) == len(ol)
    assert set(ol.tolist()) <= set(labels.tolist())


@pytest.mark.parametrize("seed", range(10))
def test_geometry_then_resize_keeps_normalised_boxes_on_objects(seed: int) -> None:
    """The SSD geometric chain + resize: box * size matches the object's pixel extent
    within the resampling error (1.5 px)."""
    size = 200
    rng = np.random.default_rng(seed)
    img, boxes, labels = _scene(rng, n=3)
    geo = Compose((Expand(p=1.0), MinIoURandomCrop(), HorizontalFlip(), ResizeNormalize(size)))
    out, ob, ol = geo(img, boxes, labels, rng)
    for b, lab in zip(ob, ol, strict=False):
        if ((b[2:] - b[:2]) * size).min() < 4:
            continue
        np.testing.assert_allclose(b * size, _extent(_colour_mask(out, COLOURS[lab])), atol=1.5)


def test_ssd_recipe_is_deterministic_under_a_seeded_generator() -> None:
    img, boxes, labels = _scene(np.random.default_rng(0))
    t = ssd_train_transform(96)
    runs = [t(img, boxes, labels, np.random.default_rng(42)) for _ in range(2)]
    for a, b in zip(*runs, strict=False):
        np.testing.assert_array_equal(a, b)
    other = t(img, boxes, labels, np.random.default_rng(43))
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], other, strict=False))


def test_photometric_changes_colours_but_not_geometry() -> None:
    img, boxes, labels = _scene(np.random.default_rng(1))
    changed = 0
    for seed in range(10):
        out, ob, ol = PhotometricDistort()(img, boxes, labels, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(ob, boxes)
        changed += int(not np.array_equal(out, img))
    assert changed >= 5


def test_resize_normalises_and_eval_recipe_is_exact() -> None:
    img = np.zeros((50, 100, 3), np.uint8)
    out, ob, ol = eval_transform(30)(img, np.array([[10, 5, 60, 45]], np.float32), np.array([2]), None)
    assert out.shape == (30, 30, 3)
    np.testing.assert_allclose(ob, [[0.1, 0.1, 0.6, 0.9]], rtol=1e-6)
    # boxes under min_size pixels are dropped
    _, ob2, ol2 = ResizeNormalize(30, min_size=2)(img, np.array([[1, 1, 2, 9]], np.float32), np.array([0]), None)
    assert ob2.shape == (0, 4) and ol2.shape == (0,)


def test_empty_image_without_objects_passes_the_ssd_recipe() -> None:
    img = np.full((40, 50, 3), 7, np.uint8)
    out, ob, ol = ssd_train_transform(32)(img, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                                          np.random.default_rng(0))
    assert out.shape == (32, 32, 3) and ob.shape == (0, 4) and ol.shape == (0,)


def test_unknown_recipe_is_named() -> None:
    assert build_transform("none", 10) is not None
    with pytest.raises(ValueError, match="'fancy'"):
        build_transform("fancy", 10)

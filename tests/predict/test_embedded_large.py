"""The embedded source's ``scene: large``: aerial-like scenes with many tiny objects and crowds."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import ConfigError, parse
from pipeline.data.embedded import EmbeddedConfig, LargeScene, generate_image, generate_voc
from pipeline.data.voc import parse_voc_xml

# Small "large" scenes keep the test fast; the geometry rules are the same at 3,000 px.
SMALL_LARGE = LargeScene(image_size=(400, 480), objects_per_image=(60, 80), object_size=(6.0, 24.0), crowds=(1, 2),
                         crowd_fraction=0.5, crowd_spread=20.0)


def _iou_matrix(b: np.ndarray) -> np.ndarray:
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area[:, None] + area[None, :] - inter)


def test_large_scene_geometry():
    cfg = EmbeddedConfig(scene="large", large=SMALL_LARGE)
    img, objs = generate_image(3, 0, cfg)
    h, w = img.shape[:2]
    assert 400 <= w <= 480 and 400 <= h <= 480 and img.dtype == np.uint8
    boxes = np.array([b for _, b in objs])
    assert 50 <= len(objs) <= 80  # a few may find no free place
    sides = np.max(boxes[:, 2:] - boxes[:, :2], axis=1)
    assert sides.min() >= 6.0 - 1e-6 and sides.max() <= 24.0 + 1e-6
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    iou = _iou_matrix(boxes)
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.1 + 1e-9
    again, objs2 = generate_image(3, 0, cfg)
    assert np.array_equal(img, again) and all(np.array_equal(a[1], b[1]) for a, b in zip(objs, objs2, strict=True))


def test_crowds_pack_objects_closer_than_a_uniform_scatter():
    def nn_dist(fraction: float) -> float:
        cfg = EmbeddedConfig(scene="large", large=LargeScene(image_size=(600, 600), objects_per_image=(60, 60),
                                                             crowds=(1, 1), crowd_fraction=fraction, crowd_spread=25.0))
        b = np.array([b for _, b in generate_image(0, 0, cfg)[1]])
        c = (b[:, :2] + b[:, 2:]) / 2
        d = np.linalg.norm(c[:, None] - c[None], axis=2)
        np.fill_diagonal(d, np.inf)
        return float(np.median(d.min(1)))

    assert nn_dist(1.0) < 0.5 * nn_dist(0.0)


def test_default_scene_is_untouched_by_the_large_settings():
    a = generate_image(0, 1, EmbeddedConfig())
    b = generate_image(0, 1, EmbeddedConfig(large=SMALL_LARGE))
    assert np.array_equal(a[0], b[0]) and len(a[1]) == len(b[1])
    assert max(a[0].shape[:2]) <= 400


def test_large_scene_writes_valid_voc(tmp_path):
    cfg = EmbeddedConfig(num_train=1, num_test=1, scene="large", large=SMALL_LARGE)
    root = generate_voc(tmp_path, 0, cfg, progress=False)
    ann = parse_voc_xml(root / "Annotations" / "000001.xml")
    assert 400 <= ann.width <= 480 and len(ann.objects) >= 50
    assert (root / "ImageSets" / "Main" / "test.txt").read_text() == "000001\n"


@pytest.mark.parametrize(("mapping", "key"), [
    ({"scene": "huge"}, "data.embedded.scene"),
    ({"large": {"image_size": [100, 200]}}, "data.embedded.large.image_size"),
    ({"large": {"object_size": [2, 10]}}, "data.embedded.large.object_size"),
    ({"large": {"crowd_fraction": 1.5}}, "data.embedded.large.crowd_fraction"),
    ({"large": {"crowds": [0, 2]}}, "data.embedded.large.crowds"),
    ({"large": {"crowd": [1, 2]}}, "data.embedded.large.crowd"),
])
def test_bad_large_scene_params_name_the_key(mapping, key):
    with pytest.raises(ConfigError) as exc:
        parse(EmbeddedConfig, mapping, "data.embedded")
    assert str(exc.value).startswith(key)

import dataclasses

import numpy as np
import pytest

from pipeline.config import ConfigError, parse
from pipeline.data.boxes import voc_to_xyxy
from pipeline.data.embedded import EMBEDDED_CLASSES, EmbeddedConfig, _iou, generate_image, generate_voc
from pipeline.data.images import read_image
from pipeline.data.voc import parse_voc_xml, read_id_list

SMALL = EmbeddedConfig(num_train=6, num_test=3, objects_per_image=(4, 8))


def test_deterministic_per_seed_and_index():
    a, objs_a = generate_image(3, 5, SMALL)
    b, objs_b = generate_image(3, 5, SMALL)
    c, _ = generate_image(4, 5, SMALL)
    assert np.array_equal(a, b) and [o[0] for o in objs_a] == [o[0] for o in objs_b]
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_size_law_and_objects_inside():
    cfg = EmbeddedConfig()
    sides, classes = [], set()
    for i in range(40):
        img, objs = generate_image(0, i, cfg)
        h, w = img.shape[:2]
        assert cfg.image_size[0] <= min(h, w) and max(h, w) <= cfg.image_size[1]
        for cls, box in objs:
            classes.add(cls)
            assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
            sides.append(max(box[2] - box[0], box[3] - box[1]))
    sides = np.asarray(sides)
    assert classes == set(EMBEDDED_CLASSES)
    assert sides.min() >= 7.5 and sides.max() <= cfg.object_size[1] + 0.1
    tiny = (sides < cfg.object_size[0]).mean()
    assert 0.1 < tiny < 0.3  # tiny_fraction = 0.2 (a few in-band objects measure under 12 after rotation)
    assert 0.5 < ((sides >= 12) & (sides <= 48)).mean()  # most objects: 3-12 px after 4x downsampling


def _pairs(cfg, n=60):
    """(IoU, same class) of every pair of objects in the first ``n`` images."""
    out = []
    for i in range(n):
        _, objs = generate_image(0, i, cfg)
        for a in range(len(objs)):
            for b in range(a + 1, len(objs)):
                iou = _iou(objs[a][1], objs[b][1][None])[0]
                out.append((iou, objs[a][0] == objs[b][0]))
    return out


def test_crowds_overlap_same_class_up_to_the_limit():
    cfg = EmbeddedConfig()
    pairs = _pairs(cfg)
    crowded = [(iou, same) for iou, same in pairs if iou > 0.1]
    assert len(crowded) > 40  # Soft-NMS vs NMS is measurable: many overlapping neighbours
    assert all(same for _, same in crowded)  # only crowd members overlap, and a crowd is one class
    assert max(iou for iou, _ in crowded) <= cfg.crowd_max_iou
    assert sum(iou > 0.35 for iou, _ in crowded) > 5  # near hard NMS' IoU 0.45: true neighbours get suppressed


def test_no_crowds_keeps_every_pair_apart():
    pairs = _pairs(EmbeddedConfig(crowd_fraction=0.0), n=30)
    assert pairs and max(iou for iou, _ in pairs) <= 0.1


def test_noise_sigma_is_the_background_pixel_noise():
    """Noise sigma 0 leaves a smooth background (tiny neighbour differences); 8 adds ~8*sqrt(2) of them."""
    flat = EmbeddedConfig(objects_per_image=(0, 0), distractors=(0, 0))
    quiet, _ = generate_image(0, 0, dataclasses.replace(flat, noise_sigma=0.0))
    noisy, _ = generate_image(0, 0, dataclasses.replace(flat, noise_sigma=8.0))
    def neighbour_sd(img):
        return float(np.diff(img.astype(np.float32), axis=1).std())
    assert neighbour_sd(quiet) < 2.0 and 9.0 < neighbour_sd(noisy) < 14.0


def test_objects_are_visible_against_background():
    """Object pixels differ from the surrounding background: the boxes mark real content."""
    img, objs = generate_image(0, 1, EmbeddedConfig())
    f = img.astype(np.float32)
    for cls, box in objs:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        if cls == "ring":
            continue  # hollow centre
        inside = f[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3).mean(0)
        ring = np.concatenate([f[max(y0 - 4, 0) : y0 - 1, x0:x1].reshape(-1, 3),
                               f[y1 + 1 : y1 + 4, x0:x1].reshape(-1, 3)])
        if len(ring) == 0:
            continue
        assert np.abs(inside - ring.mean(0)).max() > 10, (cls, box)


def test_generate_voc_layout(tmp_path):
    root = generate_voc(tmp_path, 0, SMALL, progress=False)
    assert root == tmp_path / "VOCdevkit" / "SOD5"
    train = read_id_list(root / "ImageSets/Main/train.txt")
    test = read_id_list(root / "ImageSets/Main/test.txt")
    assert len(train) == 6 and len(test) == 3 and not set(train) & set(test)
    assert read_id_list(root / "ImageSets/Main/trainval.txt") == train
    ann = parse_voc_xml(root / "Annotations" / f"{train[0]}.xml")
    img = read_image(root / "JPEGImages" / f"{train[0]}.jpg")
    assert (ann.width, ann.height) == (img.shape[1], img.shape[0])
    assert 4 <= len(ann.objects) <= 8
    _, objs = generate_image(0, 0, SMALL)
    for o, (cls, box) in zip(ann.objects, objs, strict=True):
        assert o.name == cls
        xyxy = np.array(voc_to_xyxy(*o.box))
        # integer VOC box is the tight box rounded outwards
        assert np.all(xyxy[:2] <= box[:2]) and np.all(xyxy[2:] >= box[2:])
        assert np.all(np.abs(xyxy - box) < 1.0)


def test_config_validation():
    with pytest.raises(ConfigError, match="data.embedded.image_size"):
        parse(EmbeddedConfig, {"image_size": [400, 300]}, "data.embedded")
    with pytest.raises(ConfigError, match="data.embedded.num_trian"):
        parse(EmbeddedConfig, {"num_trian": 3}, "data.embedded")
    with pytest.raises(ConfigError, match="data.embedded.crowd_max_iou"):
        parse(EmbeddedConfig, {"crowd_max_iou": 0.05}, "data.embedded")
    with pytest.raises(ConfigError, match="data.embedded.object_size"):
        parse(EmbeddedConfig, {"object_size": [4, 48]}, "data.embedded")
    with pytest.raises(ConfigError, match="data.embedded.crowd_size"):
        parse(EmbeddedConfig, {"crowd_size": [1, 4]}, "data.embedded")


def _centre_hue_in_band(cfg: EmbeddedConfig, images: int = 30) -> float:
    """Share of filled objects (disc, square, cross) whose centre pixel's hue lies in their class's band."""
    import cv2

    from pipeline.data.embedded import _HUE

    hits = []
    for i in range(images):
        img, objs = generate_image(0, i, cfg)
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL)
        for cls, box in objs:
            if cls in ("disc", "square", "cross"):
                x, y = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
                hue = hsv[y, x, 0] * 360.0 / 256.0
                hits.append(abs((hue - _HUE[cls] + 180.0) % 360.0 - 180.0) <= 25.0)
    return float(np.mean(hits))


def test_class_colour_share_sets_how_often_colour_tells_the_class():
    same_boxes = [generate_image(0, 1, dataclasses.replace(SMALL, class_colour_share=s))[1] for s in (0.0, 1.0)]
    assert [c for c, _ in same_boxes[0]] == [c for c, _ in same_boxes[1]]  # only colours change
    assert all(np.allclose(a, b) for (_, a), (_, b) in zip(*same_boxes, strict=True))
    assert _centre_hue_in_band(dataclasses.replace(SMALL, class_colour_share=1.0)) > 0.9
    assert _centre_hue_in_band(dataclasses.replace(SMALL, class_colour_share=0.0)) < 0.35
    with pytest.raises(ConfigError, match="class_colour_share"):
        parse(EmbeddedConfig, {"class_colour_share": 1.5}, "data.embedded")

"""Slicing geometry, mapping back, merging across tiles, and batched tiles == per-tile forwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config import ConfigError, parse
from pipeline.data.images import read_image
from pipeline.evaluation.infer import detect_images
from pipeline.postprocess import Detections, PostprocessConfig
from pipeline.slicing import (
    SliceConfig,
    crop_windows,
    greedy_nmm,
    merge_tiles,
    to_image_frame,
    window_frames,
    windows,
)

from .conftest import VOC07, tiny_detector


def test_windows_cover_the_image_with_the_last_aligned_to_its_end():
    wins = windows(700, 500, 300, 0.2)  # step 300 - 60 = 240
    xs = sorted({w[0] for w in wins})
    ys = sorted({w[1] for w in wins})
    assert xs == [0, 240, 400] and ys == [0, 200]
    assert all(x1 - x0 == 300 and y1 - y0 == 300 for x0, y0, x1, y1 in wins)
    assert max(w[2] for w in wins) == 700 and max(w[3] for w in wins) == 500
    assert len(wins) == 6
    cover = np.zeros((500, 700), bool)
    for x0, y0, x1, y1 in wins:
        cover[y0:y1, x0:x1] = True
    assert cover.all()


def test_small_image_is_one_window_and_full_image_is_added_once():
    assert windows(200, 150, 300, 0.2) == [(0, 0, 200, 150)]
    assert windows(200, 150, 300, 0.2, full_image=True) == [(0, 0, 200, 150)]
    wins = windows(640, 300, 300, 0.0, full_image=True)
    assert wins[-1] == (0, 0, 640, 300) and len(wins) == 4  # x: 0, 300, 340 + the whole image


def test_tile_boxes_map_back_exactly():
    frames = window_frames([(200, 100, 500, 400), (0, 0, 640, 480)])
    boxes = torch.tensor([[[0.1, 0.2, 0.5, 0.6]], [[0.25, 0.5, 0.75, 1.0]]])
    out = to_image_frame(boxes, frames)
    assert out[0, 0].tolist() == pytest.approx([230.0, 160.0, 350.0, 280.0])
    assert out[1, 0].tolist() == pytest.approx([160.0, 240.0, 480.0, 480.0])


def test_known_boxes_survive_crop_and_map_back():
    """A ground-truth box seen through each window that holds it (normalised there) maps back to itself."""
    wins = windows(900, 700, 300, 0.25)
    gt = np.array([[410.0, 260.0, 431.0, 275.0], [10.0, 650.0, 30.0, 690.0], [880.0, 5.0, 899.0, 17.0]])
    for x0, y0, x1, y1 in wins:
        inside = (gt[:, 0] >= x0) & (gt[:, 1] >= y0) & (gt[:, 2] <= x1) & (gt[:, 3] <= y1)
        for box in gt[inside]:
            norm = (box - [x0, y0, x0, y0]) / [x1 - x0, y1 - y0, x1 - x0, y1 - y0]
            back = to_image_frame(torch.tensor(norm, dtype=torch.float64)[None, None],
                                  window_frames([(x0, y0, x1, y1)]).double())
            assert back[0, 0].numpy() == pytest.approx(box, abs=1e-9)
    assert sum(1 for w in wins if w[0] <= 410 and w[2] >= 431 and w[1] <= 260 and w[3] >= 275) >= 1


def test_crop_windows_take_the_window_pixels():
    img = np.arange(60 * 80 * 3, dtype=np.uint8).reshape(60, 80, 3)
    crops = crop_windows(img, [(10, 20, 40, 50)], 30)  # 30x30 window -> S=30: no resampling
    assert crops.shape == (1, 3, 30, 30) and crops.dtype == torch.uint8
    assert np.array_equal(crops[0].permute(1, 2, 0).numpy(), img[20:50, 10:40])


def _dets(boxes, scores, labels) -> Detections:
    return Detections(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32),
                      torch.tensor(labels, dtype=torch.int64))


def test_merge_joins_one_object_seen_by_two_tiles():
    # One 20x12 object cut by a tile border: tile A sees all of it, tile B its right part.
    a = _dets([[290.0, 100.0, 310.0, 112.0], [50.0, 50.0, 60.0, 60.0]], [0.9, 0.8], [2, 1])
    b = _dets([[300.0, 100.0, 310.0, 112.0], [300.0, 100.0, 310.0, 112.0]], [0.6, 0.7], [2, 0])
    cfg = PostprocessConfig()
    greedy = merge_tiles([a, b], cfg, SliceConfig(merge="greedy"), num_classes=3)
    # class 2: the part (IOS 1.0) is merged into the whole; class 0 is another class, never merged
    assert sorted(greedy.labels.tolist()) == [0, 1, 2]
    k = greedy.labels.tolist().index(2)
    assert greedy.boxes[k].tolist() == [290.0, 100.0, 310.0, 112.0] and greedy.scores[k].item() == pytest.approx(0.9)
    nms = merge_tiles([a, b], cfg, SliceConfig(merge="nms"), num_classes=3)
    assert sorted(nms.labels.tolist()) == [0, 1, 2]  # IoU 0.5 >= 0.45: the 0.6 part suppressed
    soft = merge_tiles([a, b], cfg, SliceConfig(merge="softnms"), num_classes=3)
    part = [s for s, lab, bx in zip(soft.scores.tolist(), soft.labels.tolist(), soft.boxes.tolist(), strict=True)
            if lab == 2 and bx[0] == 300.0]
    assert part and part[0] == pytest.approx(0.6 * (1 - 0.5), abs=1e-6)  # linear decay s * (1 - IoU)
    assert len(merge_tiles([], cfg, SliceConfig(), 3)) == 0


def test_greedy_merge_grows_the_kept_box_and_keeps_top_k():
    d = greedy_nmm(torch.tensor([[0.0, 0, 10, 10], [5.0, 0, 12, 10], [100.0, 100, 110, 110]]),
                   torch.tensor([0.9, 0.5, 0.4]), torch.tensor([0, 0, 0]), 0.5)
    assert d.boxes.tolist() == [[0.0, 0.0, 12.0, 10.0], [100.0, 100.0, 110.0, 110.0]]
    top1 = merge_tiles([d], PostprocessConfig(top_k=1), SliceConfig(), 1)
    assert len(top1) == 1 and top1.scores.item() == pytest.approx(0.9)


def test_greedy_merge_equals_sahi():
    sahi_combine = pytest.importorskip("sahi.postprocess.combine")
    from sahi.prediction import ObjectPrediction

    rng = np.random.default_rng(0)
    for trial in range(5):
        n = 60
        xy = rng.integers(0, 200, (n, 2))
        wh = rng.integers(4, 40, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float64)
        scores = rng.permutation(n) / n * 0.9 + 0.05  # distinct scores: no tie-break differences
        labels = rng.integers(0, 3, n)
        ours = greedy_nmm(torch.tensor(boxes), torch.tensor(scores), torch.tensor(labels), 0.5)
        preds = [ObjectPrediction(bbox=b.tolist(), category_id=int(c), score=float(s), category_name=str(c))
                 for b, s, c in zip(boxes, scores, labels, strict=True)]
        theirs = sahi_combine.GreedyNMMPostprocess(match_threshold=0.5, match_metric="IOS", class_agnostic=False)(preds)
        theirs = sorted(theirs, key=lambda p: -p.score.value)
        assert len(ours) == len(theirs), trial
        for k, p in enumerate(theirs):
            assert ours.boxes[k].tolist() == pytest.approx(p.bbox.to_xyxy(), abs=1e-4)
            assert ours.scores[k].item() == pytest.approx(p.score.value, abs=1e-6)
            assert ours.labels[k].item() == p.category.id


def test_slice_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"evaluate\.slice\.overlap"):
        parse(SliceConfig, {"overlap": 1.0}, "evaluate.slice")
    with pytest.raises(ConfigError, match=r"evaluate\.slice\.size"):
        parse(SliceConfig, {"size": 8}, "evaluate.slice")


def test_batched_tiles_equal_per_tile_forwards(one_thread):
    """All windows of two images in one batch == one forward per window; the batch is one forward call."""
    model = tiny_detector(3)  # few classes: Soft-NMS on random scores stays cheap
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    img = read_image(VOC07 / "000005.jpg") if VOC07.is_dir() else (np.random.default_rng(0).random(
        (375, 500, 3)) * 255).astype(np.uint8)  # 500 x 375
    images = [("a", img), ("b", np.ascontiguousarray(img[::-1]))]
    cfgs = {"nms": PostprocessConfig(), "soft": PostprocessConfig(method="soft_linear")}
    sl = SliceConfig(size=300, overlap=0.2, merge="nms")
    n_tiles = len(windows(500, 375, 300, 0.2))
    assert n_tiles == 4
    batched = dict(detect_images(model, images, cfgs, batch_size=2 * n_tiles, device="cpu", slice_cfg=sl))
    assert calls == [2 * n_tiles]
    calls.clear()
    single = dict(detect_images(model, images, cfgs, batch_size=1, device="cpu", slice_cfg=sl))
    assert calls == [1] * (2 * n_tiles)
    for key in ("a", "b"):
        for name in cfgs:
            x, y = batched[key][name], single[key][name]
            assert len(x) > 0 and len(x) == len(y)
            assert torch.allclose(x.boxes, y.boxes, atol=1e-3) and torch.allclose(x.scores, y.scores, atol=1e-5)
            assert torch.equal(x.labels, y.labels)
            assert (x.boxes[:, 2] <= 500 + 1e-3).all() and (x.boxes[:, 3] <= 375 + 1e-3).all()


def test_evaluation_scores_a_set_sliced_with_batched_tiles(make_set, one_thread):
    """``evaluate.slice``: predict_set_multi detects every image of a set tile by tile, in shared batches."""
    from pipeline.data.schema import ImageRecord
    from pipeline.evaluation.infer import predict_set_multi

    no = np.zeros(1, bool)
    recs = [ImageRecord("a", "a.jpg", "test", 600, 450, np.array([[100.0, 100, 130, 120]]), np.array([0]), no, no),
            ImageRecord("b", "b.jpg", "test", 250, 200, np.array([[10.0, 10, 40, 30]]), np.array([1]), no, no)]
    set_dir = make_set(recs, ["x", "y", "z"])
    model = tiny_detector(3)
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    sl = SliceConfig(size=300, overlap=0.2, merge="greedy")
    cfgs = {"nms": PostprocessConfig(top_k=50)}
    got = predict_set_multi(model, set_dir, cfgs, "test", batch_size=4, device="cpu", progress=False, slice_cfg=sl)
    assert len(windows(600, 450, 300, 0.2)) == 6
    assert calls == [4, 3]  # 6 windows of a (600x450) + 1 of b (250x200), in batches of 4 across the two images
    want = dict(detect_images(model, [("a", read_image(set_dir / "images" / "a.jpg")),
                                      ("b", read_image(set_dir / "images" / "b.jpg"))], cfgs, 5, "cpu", sl))
    for key, (w, h) in (("a", (600, 450)), ("b", (250, 200))):
        d = got["nms"][key]
        assert 0 < len(d) <= 50 and torch.equal(d.boxes, want[key]["nms"].boxes)
        assert (d.boxes[:, 2] <= w + 1e-3).all() and (d.boxes[:, 3] <= h + 1e-3).all()

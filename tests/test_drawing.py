"""Drawing primitives (pipeline/drawing.py) on real JPEGs: boxes drawn, labels inside the image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.data.images import read_image
from pipeline.drawing import PALETTE, draw_detections, draw_label, legend_strip, line_width, text_color

NAMES = ["person", "bicycle", "a very long class name"]


@pytest.fixture
def jpeg(tmp_path) -> np.ndarray:
    """A real 96x128 JPEG (smooth gradient), decoded through the project's reader."""
    y, x = np.mgrid[0:96, 0:128]
    arr = np.stack([x * 2, y * 2, (x + y)], -1).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "img.jpg", quality=90)
    return read_image(tmp_path / "img.jpg")


def test_boxes_change_their_outline_and_leave_the_rest(jpeg):
    box = np.array([[40.0, 50.0, 90.0, 80.0]])
    out = draw_detections(jpeg, box, [1], [0.8], NAMES)
    assert out.shape == jpeg.shape and out.dtype == np.uint8
    assert not np.shares_memory(out, jpeg)
    changed = (out != jpeg).any(-1)
    x0, y0, x1, y1 = 40, 50, 90, 80
    # every side of the outline is drawn (bottom and right sides are never under the label)
    assert changed[y1, x0 + 5 : x1 - 5].all() and changed[y0 + 10 : y1 - 5, x1].all()
    assert changed[y0 + 10 : y1 - 5, x0].all()
    # the interior below the label and the far corner of the image are untouched
    assert not changed[y0 + 5 : y1 - 3, x0 + 3 : x1 - 3].any()
    assert not changed[:20, :20].any()


def test_ground_truth_and_prediction_look_different(jpeg):
    same = np.array([[20.0, 30.0, 70.0, 70.0]])
    pred = draw_detections(jpeg, same, [0], [0.9], NAMES)
    gt = draw_detections(jpeg, np.zeros((0, 4)), [], [], NAMES, gt_boxes=same)
    assert tuple(pred[70, 45]) == PALETTE[0]
    assert tuple(gt[70, 45]) == (255, 255, 255)


def test_labels_stay_inside_the_image_at_every_border():
    canvas = np.full((60, 90, 3), 40, np.uint8)
    color = PALETTE[3]
    for xy in [(-20, -20), (0, 0), (85, 0), (85, 58), (0, 59), (200, 200)]:
        canvas[:] = 40
        rect = draw_label(canvas, NAMES[2], xy, color, 1)
        assert rect is not None
        x0, y0, x1, y1 = rect
        assert 0 <= x0 <= x1 < 90 and 0 <= y0 <= y1 < 60, (xy, rect)
        # the filled background is visible at all four corners, so it was not clipped
        for cx, cy in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]:
            assert tuple(canvas[cy, cx]) == color
        # text ink (anything not background) lies strictly inside the label box
        ink = np.argwhere((canvas != color).any(-1) & (canvas != 40).any(-1))
        assert ink.size and ink[:, 0].min() > y0 and ink[:, 0].max() < y1
        assert ink[:, 1].min() > x0 and ink[:, 1].max() < x1


def test_label_on_an_image_too_small_for_text_is_skipped():
    canvas = np.zeros((4, 4, 3), np.uint8)
    assert draw_label(canvas, "person", (0, 0), PALETTE[0], 1) is None
    assert not canvas.any()


def test_text_colour_contrasts_and_line_width_scales():
    assert text_color((240, 228, 66)) == (0, 0, 0)  # yellow -> black text
    assert text_color((0, 114, 178)) == (255, 255, 255)  # blue -> white text
    assert line_width((100, 100)) == 1 and line_width((300, 300)) == 2
    assert line_width((1000, 1000)) == 3 and line_width((3000, 2000)) == 8


def test_bad_inputs_are_one_clear_error_and_bad_boxes_are_not_drawn(jpeg):
    with pytest.raises(ValueError, match="labels has 1 entries for 2 boxes"):
        draw_detections(jpeg, np.zeros((2, 4)), [0], [0.5, 0.5], NAMES)
    with pytest.raises(ValueError, match="class index 7 outside class_names"):
        draw_detections(jpeg, np.zeros((1, 4)), [7], [0.5], NAMES)
    with pytest.raises(ValueError, match="gt_labels has 2 entries for 1 boxes"):
        draw_detections(jpeg, np.zeros((0, 4)), [], [], NAMES, gt_boxes=[[1, 1, 5, 5]], gt_labels=[0, 1])
    with pytest.raises(ValueError, match=r"image has shape \(96, 128\)"):
        draw_detections(jpeg[..., 0], np.zeros((0, 4)), [], [], NAMES)
    bad = np.array([[np.nan, 0, 10, 10], [0, np.inf, 10, 10], [500, 500, 600, 600], [-50, -50, -5, -5]])
    out = draw_detections(jpeg, bad, [0, 0, 0, 0], [0.9] * 4, NAMES)
    assert np.array_equal(out, jpeg)


@pytest.mark.parametrize("width", [200, 260, 404, 900])
def test_legend_strip_text_fits_the_figure_width(width):
    strip = legend_strip(width, line_width((240, width)))
    assert strip.shape[1] == width and (strip == 255).any()  # the white GT swatch and text are drawn
    assert not strip[:, -4:].any()  # nothing runs off the right edge

"""PR figures and side-by-side detection pictures (pipeline/evaluation/plots.py)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from pipeline.data.images import read_image
from pipeline.drawing import GT_COLOR, PALETTE
from pipeline.evaluation.plots import draw_panel, plot_pr, pr_figure, write_side_by_side
from pipeline.evaluation.voc import ClassCurve, ImageDetections

matplotlib.use("Agg")

# Hand-computed: "cat" ranks TP, FP, TP over 2 objects -> recall .5 .5 1, precision 1 .5 2/3,
# all-point AP = .5 * 1 + .5 * 2/3 = 0.8333; "dog" one TP of 2 -> AP 0.5; "bird" has no ground truth.
CURVES = [
    ClassCurve(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]), 2),
    ClassCurve(np.array([0.5]), np.array([1.0]), 2),
    ClassCurve(np.zeros(0), np.zeros(0), 0),
]
CLASSES = ["cat", "dog", "bird"]


def test_pr_figure_labels_every_class_with_its_ap_and_the_map_in_the_title():
    import matplotlib.pyplot as plt

    fig = pr_figure("hr / nms", CLASSES, CURVES, highlight=["dog"])
    try:
        ax = fig.axes[0]
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert texts == ["cat AP 0.833", "dog AP 0.500", "all classes mAP 0.667"]
        assert ax.get_title() == "hr / nms  —  mAP@0.5 0.667"
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        assert tuple(np.round(np.asarray(lines["cat AP 0.833"].get_color()) * 255)) == PALETTE[0]
        assert lines["dog AP 0.500"].get_linewidth() > lines["cat AP 0.833"].get_linewidth()  # highlighted
    finally:
        plt.close(fig)


def test_pr_figure_many_classes_keep_distinct_styles_and_no_ground_truth_is_said():
    import matplotlib.pyplot as plt

    curves = [ClassCurve(np.array([1.0]), np.array([1.0 / (i + 1)]), 1) for i in range(20)]
    fig = pr_figure("t", [f"c{i}" for i in range(20)], curves)
    empty = pr_figure("t", ["bird"], [CURVES[2]])
    try:
        lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("c")]
        assert len(fig.axes[0].get_legend().get_texts()) == 21
        assert len({(ln.get_color() if isinstance(ln.get_color(), str) else tuple(ln.get_color()),
                     ln.get_linestyle()) for ln in lines}) == 20  # fmt: skip
        assert empty.axes[0].get_title() == "t  —  no ground truth" and empty.axes[0].get_legend() is None
    finally:
        plt.close(fig)
        plt.close(empty)


def test_plot_pr_writes_a_png_atomically(tmp_path):
    out = tmp_path / "figures" / "pr_hr_nms.png"
    plot_pr(out, "hr / nms", CLASSES, CURVES, ["cat"])
    img = read_image(out)
    assert img.ndim == 3 and img.shape[0] > 300
    assert sorted(p.name for p in out.parent.iterdir()) == ["pr_hr_nms.png"]


@pytest.fixture
def picture(tmp_path) -> np.ndarray:
    """A real JPEG (100x80, flat grey) decoded through the project's reader."""
    from PIL import Image

    Image.fromarray(np.full((80, 100, 3), 90, np.uint8)).save(tmp_path / "im.jpg", quality=95)
    return read_image(tmp_path / "im.jpg")


def test_panels_side_by_side_with_legend_strip(picture, tmp_path):
    gt = np.array([[10.0, 10.0, 40.0, 40.0]])  # in the (400, 320) HR frame
    det = ImageDetections(
        np.array([[200.0, 150.0, 300.0, 250.0], [50.0, 200.0, 90.0, 240.0]], np.float32),
        np.array([0.9, 0.1]),
        np.array([1, 0]),
    )
    panel = draw_panel(picture, gt, det, CLASSES, (400, 320), 240, "lr 100x80", min_score=0.3)
    assert panel.shape == (240, 300, 3)
    s = 300 / 400
    assert tuple(panel[round(40 * s), round(25 * s)]) == GT_COLOR  # bottom edge of the GT box
    assert tuple(panel[round(250 * s), round(250 * s)]) == PALETTE[1]  # bottom edge of the 0.9 'dog'
    below = panel[round(200 * s) + 3 : round(240 * s) - 3, round(50 * s) + 3 : round(90 * s)]
    assert np.abs(below.astype(int) - 90).max() <= 2  # the 0.1 "cat" is below min_score: not drawn
    out = tmp_path / "side.png"
    write_side_by_side(out, [panel, panel])
    img = read_image(out)
    strip = img.shape[0] - 240
    assert img.shape[1] == 2 * 300 + 4 and 10 <= strip <= 40
    assert np.array_equal(img[strip:, :300], panel) and np.array_equal(img[strip:, 304:], panel)
    assert (img[:strip] == 255).any() and (img[:strip] == 0).any()  # white swatch/text on black

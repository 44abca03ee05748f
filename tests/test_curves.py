"""pipeline.curves: the loss/LR PNG from real dvclive-layout TSVs and the PR overlay from real PR CSVs."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.curves import LOSS_COLORS, SET_STYLES, pr_overlay, training_curves
from pipeline.detector.metrics_log import TsvLogger
from pipeline.evaluation.plots import write_pr_csv
from pipeline.evaluation.voc import ClassCurve

CLASSES = ["disc", "ring", "square"]


def pixels_near(png, hex_color: str, tol: int = 12) -> int:
    """Pixels of ``png`` within ``tol`` of ``hex_color`` in every channel."""
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=int)
    target = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])
    return int(np.all(np.abs(rgb - target) <= tol, axis=-1).sum())


def log_training(directory, parts: bool) -> None:
    log = TsvLogger(directory)
    for step in range(0, 60, 5):
        metrics = {"loss": 12.0 / (1 + step) + 1, "lr": 0.01 * min(1.0, step / 20)}
        if parts:
            metrics |= {"cls": 8.0 / (1 + step) + 0.5, "box": 4.0 / (1 + step) + 0.5}
        log.log(metrics, step)
    log.close()


def test_training_curves_draw_loss_its_parts_and_the_lr(tmp_path):
    log_training(tmp_path / "dvclive", parts=True)
    out = training_curves(tmp_path / "dvclive", tmp_path / "fig" / "curves.png")
    assert out == tmp_path / "fig" / "curves.png"
    for color in [*LOSS_COLORS.values(), "#0072B2"]:  # loss, cls, box, lr lines
        assert pixels_near(out, color) > 30, color


def test_training_curves_without_loss_parts_draw_loss_and_lr_only(tmp_path):
    log_training(tmp_path / "dvclive", parts=False)
    out = training_curves(tmp_path / "dvclive", tmp_path / "curves.png")
    assert pixels_near(out, LOSS_COLORS["loss"]) > 30 and pixels_near(out, "#0072B2") > 30
    assert pixels_near(out, LOSS_COLORS["cls"]) == 0 and pixels_near(out, LOSS_COLORS["box"]) == 0


def write_sets(pr_dir, sets, method="softnms") -> None:
    for k, s in enumerate(sets):
        curves = [ClassCurve(np.linspace(0.05, 0.9 - 0.15 * k, 30), np.linspace(1.0, 0.3, 30), 4) for _ in CLASSES]
        write_pr_csv(pr_dir / f"{s}_{method}.csv", CLASSES, curves)


def test_pr_overlay_draws_the_sets_present_per_class_and_the_mean(tmp_path):
    write_sets(tmp_path / "pr", ["hr", "sr", "bicubic", "lr"])
    write_sets(tmp_path / "pr", ["hr"], method="nms")
    skipped = pr_overlay(tmp_path / "pr", tmp_path / "overlay.png", ["ring", "nope", "ring", "disc"])
    assert skipped == ["nope"]
    for s in ("hr", "sr", "bicubic", "lr"):
        assert pixels_near(tmp_path / "overlay.png", SET_STYLES[s][1]) > 30, s
    width, height = Image.open(tmp_path / "overlay.png").size
    assert width > height  # ring, disc and the mean: one row of three panels

    pr_overlay(tmp_path / "pr", tmp_path / "nms.png", ["ring"], method="nms")  # only HR has NMS curves
    assert pixels_near(tmp_path / "nms.png", SET_STYLES["hr"][1]) > 30
    assert pixels_near(tmp_path / "nms.png", SET_STYLES["sr"][1]) == 0


def test_pr_overlay_with_no_classes_draws_the_mean_alone(tmp_path):
    write_sets(tmp_path / "pr", ["hr", "lr"])
    assert pr_overlay(tmp_path / "pr", tmp_path / "mean.png", []) == []
    assert pixels_near(tmp_path / "mean.png", SET_STYLES["lr"][1]) > 30


def test_pr_overlay_reads_a_quoted_class_name_with_a_comma(tmp_path):
    names = ["disc", "potted, plant"]  # COCO-like names are written quoted by the csv module
    curves = [ClassCurve(np.linspace(0.05, 0.9, 30), np.linspace(1.0, 0.3, 30), 4) for _ in names]
    write_pr_csv(tmp_path / "pr" / "hr_softnms.csv", names, curves)
    assert '"potted, plant"' in (tmp_path / "pr" / "hr_softnms.csv").read_text()
    assert pr_overlay(tmp_path / "pr", tmp_path / "o.png", ["potted, plant", "potted"]) == ["potted"]

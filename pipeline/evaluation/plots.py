"""PR-curve tables/figures and side-by-side detection pictures."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.atomic import atomic_path
from pipeline.data.images import write_image
from pipeline.drawing import PALETTE, draw_detections, draw_label, legend_strip, line_width
from pipeline.evaluation.tables import write_csv
from pipeline.evaluation.voc import ClassCurve, ImageDetections

RECALL_POINTS = np.linspace(0.0, 1.0, 101)
_LINE_STYLES = ("-", "--", ":", "-.")


def interpolated_precision(curve: ClassCurve) -> np.ndarray:
    """Precision envelope at recall 0, 0.01, …, 1 (0 beyond the reached recall), as COCO samples it."""
    if curve.recall.size == 0:
        return np.zeros_like(RECALL_POINTS)
    env = np.maximum.accumulate(curve.precision[::-1])[::-1]
    idx = np.searchsorted(curve.recall, RECALL_POINTS, side="left")
    out = np.zeros_like(RECALL_POINTS)
    ok = idx < env.size
    out[ok] = env[idx[ok]]
    return out


def write_pr_csv(path: str | os.PathLike[str], classes: Sequence[str], curves: Sequence[ClassCurve]) -> None:
    """Wide CSV: column ``recall`` plus one precision column per class with ground truth (names CSV-quoted)."""
    cols = [(c, interpolated_precision(cv)) for c, cv in zip(classes, curves, strict=False) if cv.npos > 0]
    rows = ([f"{r:.2f}", *[f"{p[i]:.6f}" for _, p in cols]] for i, r in enumerate(RECALL_POINTS))
    write_csv(path, ["recall", *[c for c, _ in cols]], rows)


def pr_figure(
    title: str,
    classes: Sequence[str],
    curves: Sequence[ClassCurve],
    highlight: Sequence[str] = (),
):
    """Matplotlib figure of every class's raw PR curve, labelled with its AP, plus the mean curve.

    Classes with ground truth each get an Okabe-Ito colour (line style cycles after 7) and a
    legend entry ``name AP 0.xxx``; ``highlight`` classes are drawn thicker; the black
    ``all classes`` line is the mean of the 101-point interpolated curves; the title ends
    with the mAP@0.5 (mean AP over classes with ground truth).  The caller closes the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.evaluation.voc import voc_ap

    shown = [(name, cv) for name, cv in zip(classes, curves, strict=False) if cv.npos > 0]
    aps = [voc_ap(cv.recall, cv.precision) for _, cv in shown]
    fig, ax = plt.subplots(figsize=(7.5 if len(shown) > 8 else 6.2, 4.5), dpi=150)
    for i, ((name, cv), ap) in enumerate(zip(shown, aps, strict=True)):
        ax.plot(
            cv.recall,
            cv.precision,
            color=np.asarray(PALETTE[i % len(PALETTE)]) / 255,
            ls=_LINE_STYLES[(i // len(PALETTE)) % len(_LINE_STYLES)],
            lw=2.0 if name in highlight else 1.1,
            label=f"{name} AP {ap:.3f}",
        )
    mean_ap = float(np.mean(aps)) if aps else float("nan")
    if shown:
        mean_curve = np.mean([interpolated_precision(cv) for _, cv in shown], axis=0)
        ax.plot(RECALL_POINTS, mean_curve, color="black", lw=2.6, label=f"all classes mAP {mean_ap:.3f}")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(f"{title}  —  mAP@0.5 {mean_ap:.3f}" if shown else f"{title}  —  no ground truth")
    ax.grid(alpha=0.3)
    if shown:
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7 if len(shown) > 12 else 8, frameon=False
        )
    fig.tight_layout()
    return fig


def plot_pr(
    path: str | os.PathLike[str],
    title: str,
    classes: Sequence[str],
    curves: Sequence[ClassCurve],
    highlight: Sequence[str],
) -> None:
    """PNG of :func:`pr_figure` (every class with its AP, ``highlight`` classes thicker, mAP in the title)."""
    import matplotlib.pyplot as plt

    fig = pr_figure(title, classes, curves, highlight)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def draw_panel(
    image: np.ndarray,
    gt_boxes: np.ndarray,
    det: ImageDetections,
    classes: Sequence[str],
    frame_size: tuple[int, int],
    height: int,
    label: str,
    min_score: float,
) -> np.ndarray:
    """One panel: ``image`` shown at display ``height``; GT and detections scoring at least
    ``min_score`` (:func:`pipeline.drawing.draw_detections` style) given in the
    ``frame_size`` = (w, h) pixel frame; ``label`` in the bottom-left corner."""
    fw, fh = frame_size
    width = max(1, round(height * fw / fh))
    # Nearest-neighbour keeps LR pixels visible instead of smoothing them away.
    canvas = cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)
    s = np.array([width / fw, height / fh, width / fw, height / fh])
    keep = np.asarray(det.scores) >= min_score
    canvas = draw_detections(
        canvas,
        np.asarray(det.boxes, np.float64).reshape(-1, 4)[keep] * s,
        np.asarray(det.labels)[keep],
        np.asarray(det.scores)[keep],
        classes,
        gt_boxes=np.asarray(gt_boxes, np.float64).reshape(-1, 4) * s,
        legend=False,
    )
    # Panel label in the bottom-left corner, out of the way of top-left objects.
    draw_label(canvas, label, (0, height), (0, 0, 0), line_width(canvas.shape))
    return canvas


def write_side_by_side(path: str | os.PathLike[str], panels: Sequence[np.ndarray]) -> None:
    """Concatenate equally tall panels horizontally (4 px gaps) under a ground truth / prediction
    legend strip into one PNG."""
    h = panels[0].shape[0]
    gap = np.zeros((h, 4, 3), np.uint8)
    row = np.concatenate([p if i == 0 else np.concatenate([gap, p], 1) for i, p in enumerate(panels)], 1)
    write_image(Path(path), np.concatenate([legend_strip(row.shape[1], line_width(panels[0].shape)), row], 0))

"""PR-curve tables/figures and side-by-side detection pictures."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.atomic import atomic_path, write_text
from pipeline.data.images import write_image
from pipeline.evaluation.voc import ClassCurve, ImageDetections

RECALL_POINTS = np.linspace(0.0, 1.0, 101)


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
    """Wide CSV for ``dvc plots``: column ``recall`` plus one precision column per class with ground truth."""
    cols = [(c, interpolated_precision(cv)) for c, cv in zip(classes, curves, strict=False) if cv.npos > 0]
    lines = [",".join(["recall", *[c for c, _ in cols]])]
    for i, r in enumerate(RECALL_POINTS):
        lines.append(",".join([f"{r:.2f}", *[f"{p[i]:.6f}" for _, p in cols]]))
    write_text(path, "\n".join(lines) + "\n")


def plot_pr(
    path: str | os.PathLike[str],
    title: str,
    classes: Sequence[str],
    curves: Sequence[ClassCurve],
    highlight: Sequence[str],
) -> None:
    """PNG of every class's raw PR curve; ``highlight`` classes in colour with their AP, others grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.evaluation.voc import voc_ap

    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
    for name, cv in zip(classes, curves, strict=False):
        if cv.npos == 0 or name in highlight:
            continue
        ax.plot(cv.recall, cv.precision, color="0.8", lw=0.8)
    for name in highlight:
        if name in classes and curves[classes.index(name)].npos > 0:
            cv = curves[classes.index(name)]
            ax.plot(
                cv.recall, cv.precision, lw=1.8, label=f"{name} (AP {voc_ap(cv.recall, cv.precision):.3f})"
            )
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


_COLORS = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
]


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
    """One panel: ``image`` shown at display ``height``; GT (white) and detections (per-class colour)
    given in the ``frame_size`` = (w, h) pixel frame."""
    fw, fh = frame_size
    width = max(1, round(height * fw / fh))
    # Nearest-neighbour keeps LR pixels visible instead of smoothing them away.
    canvas = cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST).copy()
    s = np.array([width / fw, height / fh, width / fw, height / fh])
    for b in np.asarray(gt_boxes).reshape(-1, 4):
        x0, y0, x1, y1 = (int(round(v)) for v in b * s)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (255, 255, 255), 1)
    for b, sc, lb in zip(det.boxes, det.scores, det.labels, strict=False):
        if sc < min_score:
            continue
        x0, y0, x1, y1 = (int(round(v)) for v in b * s)
        color = _COLORS[int(lb) % len(_COLORS)]
        cv2.rectangle(canvas, (x0, y0), (x1, y1), color, 2)
        cv2.putText(
            canvas,
            f"{classes[int(lb)]} {sc:.2f}",
            (x0, max(10, y0 - 3)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            color,
            1,
            cv2.LINE_AA,
        )
    # Panel label in the bottom-left corner, out of the way of top-left objects.
    cv2.rectangle(canvas, (0, height - 16), (8 * len(label) + 8, height), (0, 0, 0), -1)
    cv2.putText(
        canvas, label, (4, height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
    )
    return canvas


def write_side_by_side(path: str | os.PathLike[str], panels: Sequence[np.ndarray]) -> None:
    """Concatenate equally tall panels horizontally (4 px gaps) into one PNG."""
    h = panels[0].shape[0]
    gap = np.zeros((h, 4, 3), np.uint8)
    row = [p if i == 0 else np.concatenate([gap, p], 1) for i, p in enumerate(panels)]
    write_image(Path(path), np.concatenate(row, 1))

"""Side-by-side PNG: HR | LR (nearest-upscaled) | bicubic | SR (| SRGAN) crops around small objects."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.atomic import atomic_path
from pipeline.data.schema import ImageRecord


@dataclass(frozen=True)
class CropSpec:
    """A box (HR pixels) of one image to show; ``label`` is its class name."""

    image_id: str
    box: np.ndarray
    label: str


def pick_small_boxes(records: list[ImageRecord], classes: list[str], n: int) -> list[CropSpec]:
    """The ``n`` smallest non-crowd boxes, at most one per image (smallest area first)."""
    cands = []
    for r in records:
        if len(r) == 0:
            continue
        areas = (r.boxes[:, 2] - r.boxes[:, 0]) * (r.boxes[:, 3] - r.boxes[:, 1])
        areas = np.where(r.iscrowd, np.inf, areas)
        i = int(np.argmin(areas))
        if np.isfinite(areas[i]):
            cands.append((float(areas[i]), r.image_id, r.boxes[i].copy(), classes[int(r.labels[i])]))
    cands.sort(key=lambda c: (c[0], c[1]))
    return [CropSpec(iid, box, label) for _, iid, box, label in cands[:n]]


def crop_window(box: np.ndarray, width: int, height: int, size: int = 96) -> tuple[int, int, int, int]:
    """A ``size``-px window (clipped to the image) centred on ``box``, grown to contain it."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = int(max(size, box[2] - box[0] + 8, box[3] - box[1] + 8))
    x0 = int(np.clip(round(cx - side / 2), 0, max(0, width - side)))
    y0 = int(np.clip(round(cy - side / 2), 0, max(0, height - side)))
    return x0, y0, min(width, x0 + side), min(height, y0 + side)


def save_side_by_side(
    path: str | os.PathLike[str],
    rows: list[tuple[CropSpec, dict[str, np.ndarray]]],
    crop: int = 96,
    cols: Sequence[str] = ("HR", "LR (nearest)", "bicubic", "SR"),
) -> None:
    """Write the comparison figure atomically.

    Args:
        rows: per crop, its spec and HR-sized (H, W, 3) uint8 images keyed by ``cols``
            (e.g. "HR", "LR (nearest)", "bicubic", "SR").
        cols: the columns, in order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = max(1, len(rows))
    fig, axes = plt.subplots(n, len(cols), figsize=(2.5 * len(cols), 2.6 * n), squeeze=False)
    for r, (spec, images) in enumerate(rows):
        h, w = images["HR"].shape[:2]
        x0, y0, x1, y1 = crop_window(spec.box, w, h, crop)
        for c, name in enumerate(cols):
            ax = axes[r][c]
            ax.imshow(images[name][y0:y1, x0:x1], interpolation="nearest")
            b = spec.box
            ax.add_patch(Rectangle((b[0] - x0 - 0.5, b[1] - y0 - 0.5), b[2] - b[0], b[3] - b[1],
                                   fill=False, edgecolor="lime", linewidth=1))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(f"{spec.image_id}\n{spec.label} {b[2] - b[0]:.0f}x{b[3] - b[1]:.0f}", fontsize=8)
    if not rows:
        for ax in axes[0]:
            ax.axis("off")
        axes[0][0].set_title("no boxes in the split")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def nearest_upscale(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """LR (h, w, 3) uint8 shown at HR size ``(w, h)`` with nearest-neighbour pixels."""
    return np.asarray(Image.fromarray(lr).resize(tuple(size), Image.Resampling.NEAREST))

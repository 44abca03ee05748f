"""Small plotting helpers (matplotlib Agg, PIL): histograms, boxes on images, grids.

All figures are written atomically; matplotlib is imported lazily with the
non-interactive Agg backend so importing this module never needs a display.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.atomic import atomic_path

Color = tuple[int, int, int]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def histogram_png(
    path: str | os.PathLike[str],
    edges: np.ndarray,
    counts: np.ndarray,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "count",
    vlines: Mapping[str, float] | None = None,
) -> None:
    """Bar histogram from precomputed ``edges`` (K+1,) and ``counts`` (K,), with labelled vertical lines."""
    plt = _pyplot()
    edges = np.asarray(edges, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c72b0", edgecolor="white", linewidth=0.4)
    for i, (label, x) in enumerate((vlines or {}).items()):
        ax.axvline(x, color=f"C{i + 1}", linestyle="--", linewidth=1.2, label=label)
    if vlines:
        ax.legend(frameon=False)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.set_xlim(edges[0], edges[-1])
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike[str]) -> None:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    plt = _pyplot()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    color: Color | Sequence[Color] = (0, 255, 0),
    labels: Sequence[str] | None = None,
    width: int = 2,
) -> np.ndarray:
    """Return a copy of an (H, W, 3) uint8 image with xyxy ``boxes`` (N, 4) outlined.

    ``color`` is one RGB colour or one per box; ``labels`` are optional captions.
    """
    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    colors = [color] * len(boxes) if isinstance(color[0], int) else list(color)  # type: ignore[index]
    for i, (box, c) in enumerate(zip(boxes, colors, strict=True)):
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=tuple(c), width=width)
        if labels is not None:
            draw.text((x0 + 2, max(0.0, y0 - 11)), labels[i], fill=tuple(c))
    return np.asarray(img)


def image_grid_png(
    path: str | os.PathLike[str],
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    cols: int = 2,
    suptitle: str = "",
) -> None:
    """Write images side by side (``cols`` per row) as one PNG."""
    if not images:
        raise ValueError(f"{path}: no images to draw")
    plt = _pyplot()
    rows = -(-len(images) // cols)
    cols = min(cols, len(images))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 4.0 * rows), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(img)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)

"""Detection drawing primitives for pictures fit for a paper (Ultralytics/SAHI style).

Line width and font scale with the image size, labels sit on filled backgrounds with
black or white text (whichever contrasts more) and always stay inside the image,
class colours come from the colour-blind-safe Okabe-Ito palette, and ground truth
(white with a black edge) is told apart from predictions (class colour) by a legend.
Images are (H, W, 3) uint8 RGB; boxes are xyxy pixels of that image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np

Color = tuple[int, int, int]

# Okabe & Ito (2008), "Color Universal Design", without black (kept for text/edges), RGB.
PALETTE: tuple[Color, ...] = (
    (230, 159, 0),  # orange
    (86, 180, 233),  # sky blue
    (0, 158, 115),  # bluish green
    (240, 228, 66),  # yellow
    (0, 114, 178),  # blue
    (213, 94, 0),  # vermillion
    (204, 121, 167),  # reddish purple
)
GT_COLOR: Color = (255, 255, 255)
EDGE_COLOR: Color = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MIN_SCALE = 0.25


def class_color(index: int) -> Color:
    """Palette colour of class ``index`` (cycles after 7 classes)."""
    return PALETTE[int(index) % len(PALETTE)]


def line_width(shape: Sequence[int]) -> int:
    """Box line width for an image of ``shape`` (H, W, ...): 0.3 % of the mean side, at least 2 px
    (as Ultralytics), 1 px on images under 200 px."""
    mean_side = (shape[0] + shape[1]) / 2
    return 1 if mean_side < 200 else max(2, round(mean_side * 0.003))


def font_scale(lw: int) -> float:
    """OpenCV font scale that goes with line width ``lw`` (Ultralytics: lw / 3; smaller here, as
    small objects crowd)."""
    return max(0.35, lw / 4)


def text_color(background: Color) -> Color:
    """Black or white, whichever contrasts more with ``background`` (WCAG relative luminance)."""
    c = np.asarray(background, float) / 255.0
    lin = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    lum = float(lin @ [0.2126, 0.7152, 0.0722])
    return EDGE_COLOR if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else (255, 255, 255)


def _fit_text(text: str, size: tuple[int, int], scale: float, thick: int) -> tuple[str, float, int, int, int]:
    """Shrink, then truncate, ``text`` until its label box fits ``size`` = (w, h) px.

    Returns text, scale, box width, box height, padding; the text is empty when even one
    character at the smallest scale does not fit.
    """
    while True:
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
        pad = max(1, round(th * 0.25))
        w, h = tw + 2 * pad, th + base + 2 * pad
        if w <= size[0] and h <= size[1]:
            return text, scale, w, h, pad
        if scale > _MIN_SCALE:
            scale = max(_MIN_SCALE, scale * 0.85)
        elif len(text) > 1 and h <= size[1]:
            text = text[:-1]
        else:
            return "", scale, 0, 0, 0


def draw_label(
    canvas: np.ndarray, text: str, xy: tuple[int, int], color: Color, lw: int, *, above: bool = True
) -> tuple[int, int, int, int] | None:
    """Draw ``text`` on a filled ``color`` box anchored at ``xy`` (left, top edge), in place.

    With ``above`` the label sits on top of ``xy`` when there is room, else just below it;
    it is shifted and, if needed, shrunk or truncated so that it always lies inside ``canvas``.
    Returns the label box (x0, y0, x1, y1), inclusive pixel coordinates, or None when the
    image is too small for any text.
    """
    h_img, w_img = canvas.shape[:2]
    thick = max(1, lw - 1)
    text, scale, w, h, pad = _fit_text(text, (w_img, h_img), font_scale(lw), thick)
    if not text:
        return None
    x, y = xy
    top = y - h if above and y - h >= 0 else y
    top = int(min(max(top, 0), h_img - h))
    left = int(min(max(x, 0), w_img - w))
    cv2.rectangle(canvas, (left, top), (left + w - 1, top + h - 1), color, -1)
    baseline_y = top + h - pad - cv2.getTextSize(text, _FONT, scale, thick)[1]
    cv2.putText(canvas, text, (left + pad, baseline_y), _FONT, scale, text_color(color), thick, cv2.LINE_AA)
    return left, top, left + w - 1, top + h - 1


def _draw_box(
    canvas: np.ndarray, box: np.ndarray, color: Color, lw: int, edge: bool
) -> tuple[int, int] | None:
    """Outline one xyxy box (clipped to the image) in place; ``edge`` adds a 1 px black rim.

    Returns its top-left corner, or None (nothing drawn) for a non-finite box or one
    wholly outside the image.
    """
    h, w = canvas.shape[:2]
    if not np.isfinite(box).all() or box[2] < 0 or box[3] < 0 or box[0] > w - 1 or box[1] > h - 1:
        return None
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = min(max(x0, 0), w - 1), min(max(x1, 0), w - 1)
    y0, y1 = min(max(y0, 0), h - 1), min(max(y1, 0), h - 1)
    if edge:
        cv2.rectangle(canvas, (x0, y0), (x1, y1), EDGE_COLOR, lw + 2)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), color, lw)
    return x0, y0


def _swatch(canvas: np.ndarray, xy: tuple[int, int], size: int, colors: Sequence[Color]) -> None:
    """Filled square at ``xy`` (top-left) with a black rim: one colour, or vertical stripes of several."""
    x, y = xy
    for j, c in enumerate(colors):
        cv2.rectangle(
            canvas, (x + j * size // len(colors), y), (x + (j + 1) * size // len(colors), y + size), c, -1
        )
    cv2.rectangle(canvas, (x, y), (x + size, y + size), EDGE_COLOR, 1)


def _legend_metrics(lw: int) -> tuple[float, int, int, int]:
    """Font scale, thickness, text height and swatch size of legends drawn with line width ``lw``."""
    scale, thick = font_scale(lw), max(1, lw - 1)
    (_, th), base = cv2.getTextSize("Ag", _FONT, scale, thick)
    return scale, thick, th, th + base


def draw_legend(canvas: np.ndarray, entries: Sequence[tuple[str, Sequence[Color]]], lw: int) -> None:
    """Legend in the top-right corner, in place: a swatch (of the entry's colours) plus text per entry.

    Skipped when it would cover more than half the image's width or height (tiny images).
    """
    if not entries:
        return
    scale, thick, th, sw = _legend_metrics(lw)
    row = sw + 4
    width = max(cv2.getTextSize(t, _FONT, scale, thick)[0][0] for t, _ in entries) + sw + 12
    h_img, w_img = canvas.shape[:2]
    if width > w_img / 2 or row * len(entries) + 6 > h_img / 2:
        return
    x = w_img - width - 2
    box = canvas[2 : 2 + row * len(entries) + 4, x : x + width]
    box[:] = (box * 0.35).astype(np.uint8)  # darkened backdrop keeps the image visible
    for i, (text, colors) in enumerate(entries):
        y = 4 + i * row
        _swatch(canvas, (x + 4, y), sw, colors)
        cv2.putText(canvas, text, (x + sw + 8, y + th), _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)


def legend_strip(width: int, lw: int) -> np.ndarray:
    """A black (h, ``width``, 3) band for the top of a figure: ``ground truth`` (white, black rim)
    and ``prediction (colour = class)`` (palette stripes), left-aligned; the wording shortens
    to ``GT`` / ``prediction`` and then the font shrinks until it fits ``width``."""
    _, thick, th, sw = _legend_metrics(lw)
    strip = np.zeros((sw + 8, width, 3), np.uint8)
    swatches = ((GT_COLOR,), PALETTE[:4])
    for texts, scale in _legend_wordings(font_scale(lw), thick):
        widths = [sw + 4 + cv2.getTextSize(t, _FONT, scale, thick)[0][0] for t in texts]
        if sum(widths) + 2 * sw + 8 <= width:
            break
    x = 4
    for text, colors, w in zip(texts, swatches, widths, strict=True):
        _swatch(strip, (x, 4), sw, colors)
        cv2.putText(strip, text, (x + sw + 4, 4 + th), _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
        x += w + 2 * sw
    return strip


def _legend_wordings(scale: float, thick: int) -> Iterator[tuple[tuple[str, str], float]]:
    """Legend texts from the fullest to the shortest, then ever smaller fonts (down to the minimum)."""
    yield ("ground truth", "prediction (colour = class)"), scale
    yield ("ground truth", "prediction"), scale
    while scale > _MIN_SCALE:
        scale = max(_MIN_SCALE, scale * 0.85)
        yield ("GT", "prediction"), scale


def _per_box(name: str, values: object, n: int, dtype: type, n_classes: int | None = None) -> np.ndarray:
    """``values`` as an (n,) array; one clear ValueError for a wrong length or an unknown class index."""
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.size != n:
        raise ValueError(f"draw_detections: {name} has {arr.size} entries for {n} boxes")
    if n_classes is not None and ((arr < 0) | (arr >= n_classes)).any():
        bad = int(arr[(arr < 0) | (arr >= n_classes)][0])
        raise ValueError(
            f"draw_detections: {name} has class index {bad} outside class_names (0..{n_classes - 1})"
        )
    return arr


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray | None,
    class_names: Sequence[str],
    gt_boxes: np.ndarray | None = None,
    gt_labels: Sequence[int] | np.ndarray | None = None,
    *,
    legend: bool = True,
) -> np.ndarray:
    """Return a copy of ``image`` (H, W, 3) uint8 RGB with predictions and optional ground truth drawn.

    Args:
        image: the picture; never modified.
        boxes: (N, 4) predicted xyxy boxes in ``image`` pixels; non-finite boxes and boxes
            wholly outside the image are not drawn.
        labels: (N,) class indices into ``class_names``.
        scores: (N,) confidences shown after the class name, or None for names only.
        class_names: class names by index.
        gt_boxes: (M, 4) ground-truth xyxy boxes, drawn white with a black rim; a legend
            (ground truth plus the predicted classes) is added when given.
        gt_labels: (M,) ground-truth class indices; shown as small labels inside the box.
        legend: draw the legend when ``gt_boxes`` is given (off where a figure has its own,
            see :func:`legend_strip`).
    """
    canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if canvas.ndim != 3 or canvas.shape[2] != 3:
        raise ValueError(f"draw_detections: image has shape {canvas.shape}, expected (H, W, 3) RGB")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = _per_box("labels", labels, len(boxes), np.int64, len(class_names))
    if scores is not None:
        scores = _per_box("scores", scores, len(boxes), np.float64)
    gt = np.zeros((0, 4)) if gt_boxes is None else np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    gt_lb = [] if gt_labels is None else _per_box("gt_labels", gt_labels, len(gt), np.int64, len(class_names))
    lw = line_width(canvas.shape)
    gt_anchors = [_draw_box(canvas, b, GT_COLOR, lw, edge=True) for b in gt]
    order = np.argsort(scores, kind="stable") if scores is not None else np.arange(len(boxes))
    anchors = [(i, _draw_box(canvas, boxes[i], class_color(labels[i]), lw, edge=False)) for i in order]
    for xy, lb in zip(gt_anchors, gt_lb, strict=False):
        if xy is not None:
            draw_label(canvas, str(class_names[lb]), xy, GT_COLOR, max(1, lw - 1), above=False)
    for i, xy in anchors:
        if xy is None:
            continue
        text = str(class_names[labels[i]]) + ("" if scores is None else f" {float(scores[i]):.2f}")
        draw_label(canvas, text, xy, class_color(labels[i]), lw)
    if gt_boxes is not None and legend:
        present = sorted(set(labels.tolist()))
        draw_legend(
            canvas,
            [("ground truth", (GT_COLOR,))] + [(str(class_names[c]), (class_color(c),)) for c in present],
            lw,
        )
    return canvas

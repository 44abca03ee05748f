"""Long-format PR tables for ``dvc plots``: one row per (recall point, curve).

A wide table (one precision column per class) makes every plot definition name the
classes of one dataset; the long form has fixed columns, so the plot definitions in
``dvc.yaml`` and the Vega templates in ``.dvc/plots/`` colour by a column instead and
work for any class names (spaces included)::

    <out>/pr_plots/<set>_<method>.csv   recall,precision,class   ("mean" + the pictured classes)
    <out>/pr_sets.csv                   recall,precision,set,method   (the mean curve of each)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.evaluation.plots import RECALL_POINTS, interpolated_precision
from pipeline.evaluation.voc import ClassCurve

MEAN = "mean"


def mean_precision(curves: Sequence[ClassCurve]) -> np.ndarray:
    """Mean over the classes with ground truth of the 101-point precision envelope (zeros if none)."""
    rows = [interpolated_precision(c) for c in curves if c.npos > 0]
    return np.mean(rows, axis=0) if rows else np.zeros_like(RECALL_POINTS)


def class_rows(classes: Sequence[str], curves: Sequence[ClassCurve], picked: Sequence[str]) -> list[list[object]]:
    """Rows ``[recall, precision, curve]`` of the mean curve and of each picked class with ground truth."""
    series = [(MEAN, mean_precision(curves))]
    series += [(c, interpolated_precision(curves[classes.index(c)])) for c in picked if curves[classes.index(c)].npos]
    return [[f"{r:.2f}", f"{p[i]:.6f}", name] for name, p in series for i, r in enumerate(RECALL_POINTS)]

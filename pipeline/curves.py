"""PNG curves for reports: training loss + learning rate, and PR overlays across the test sets.

Both read the tables the pipeline already writes for ``dvc plots`` (dvclive-layout TSVs of
:class:`pipeline.detector.metrics_log.TsvLogger`; wide PR CSVs of
:func:`pipeline.evaluation.plots.write_pr_csv`), so a PNG and its interactive plot never
disagree. Figures use matplotlib's object API (no pyplot state, no display) and are written
atomically.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError
from pipeline.plots import save_figure

# Okabe & Ito's colour-blind-safe palette, one colour + one dash per set (readable in greyscale too)
SET_STYLES: dict[str, tuple[str, str, str]] = {
    "hr": ("HR", "#0072B2", "-"),
    "sr": ("SR", "#D55E00", "--"),
    "bicubic": ("bicubic", "#009E73", "-."),
    "lr": ("LR", "#CC79A7", ":"),
}
LOSS_COLORS = {"loss": "#D55E00", "cls": "#E69F00", "box": "#56B4E9"}  # Okabe-Ito


class CurveError(PipelineError, ValueError):
    """A curve table is missing, empty or not numeric."""


def read_table(path: str | os.PathLike[str], sep: str = ",") -> tuple[list[str], np.ndarray]:
    """Header and float rows (N, C) of a small numeric table (csv quoting, so a class name may
    hold ``sep``); one-line errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf8")
    except FileNotFoundError:
        raise CurveError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CurveError(f"{path}: cannot read ({exc})") from None
    try:
        rows = [(n, cells) for n, cells in enumerate(csv.reader(text.splitlines(), delimiter=sep), 1) if cells]
    except csv.Error as exc:
        raise CurveError(f"{path}: not a {'TSV' if sep == chr(9) else 'CSV'} table ({exc})") from None
    if len(rows) < 2:
        raise CurveError(f"{path}: no data rows (a header and at least one row are needed)")
    header = [h.strip() for h in rows[0][1]]
    values = []
    for n, cells in rows[1:]:
        shown = sep.join(cells)[:80]
        if len(cells) != len(header):
            raise CurveError(f"{path}:{n}: {len(cells)} fields, the header has {len(header)}")
        try:
            row = [float(c) for c in cells]
        except ValueError:
            raise CurveError(f"{path}:{n}: not a number in {shown!r}") from None
        if not all(math.isfinite(v) for v in row):
            raise CurveError(f"{path}:{n}: non-finite value in {shown!r}")
        values.append(row)
    return header, np.asarray(values, dtype=float)


def _column(header: list[str], data: np.ndarray, name: str, path: Path) -> np.ndarray:
    if name not in header:
        raise CurveError(f"{path}: no {name!r} column (columns: {header})")
    return data[:, header.index(name)]


def _metric(tsv: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one dvclive TSV (``timestamp  step  <name>``)."""
    header, data = read_table(tsv, sep="\t")
    return _column(header, data, "step", tsv), _column(header, data, tsv.stem, tsv)


def training_curves(dvclive_dir: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> Path:
    """Loss (total, plus ``cls``/``box`` when logged) and learning rate against the step, one PNG.

    Args:
        dvclive_dir: the training ``dvclive`` folder (``plots/metrics/train/{loss,lr,...}.tsv``).
        out_png: figure path, written atomically.
    """
    from matplotlib.figure import Figure

    train = Path(dvclive_dir) / "plots" / "metrics" / "train"
    loss_steps, loss = _metric(train / "loss.tsv")
    fig = Figure(figsize=(9, 3.6), dpi=120, layout="constrained")
    ax_loss, ax_lr = fig.subplots(1, 2)
    for name, color in LOSS_COLORS.items():
        tsv = train / f"{name}.tsv"
        if name == "loss" or tsv.is_file():  # the loss parts only when the loop logged them
            steps, values = _metric(tsv)
            ax_loss.plot(steps, values, color=color, lw=1.6 if name == "loss" else 1.0, label=name)
    if np.all(loss > 0):
        from matplotlib.ticker import FuncFormatter

        ax_loss.set_yscale("log")
        ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_loss.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(v)[0] in "235" else ""))
    ax_loss.set(xlabel="step", ylabel="training loss", title=f"loss (last {loss[-1]:.3g} at step {loss_steps[-1]:.0f})")
    ax_loss.legend(frameon=False)
    if (train / "lr.tsv").is_file():
        lr_steps, lr = _metric(train / "lr.tsv")
        ax_lr.plot(lr_steps, lr, color="#0072B2", lw=1.6)
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax_lr.set(xlabel="step", ylabel="learning rate", title="learning rate")
    for ax in (ax_loss, ax_lr):
        ax.grid(alpha=0.3)
    save_figure(fig, out_png)
    return Path(out_png)


def _read_pr(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(recall, {class: precision}) of one wide PR CSV."""
    header, data = read_table(path)
    if header[0] != "recall":
        raise CurveError(f"{path}: first column must be 'recall', got {header[0]!r}")
    if len(header) < 2:
        raise CurveError(f"{path}: no class columns after 'recall'")
    return data[:, 0], {name: data[:, i] for i, name in enumerate(header[1:], 1)}


def pr_overlay(
    pr_dir: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    classes: Sequence[str],
    method: str = "softnms",
) -> list[str]:
    """One PNG: a panel per class in ``classes`` plus the mean over all classes, each overlaying
    the HR, SR, bicubic and LR precision-recall curves (those present) with their AP.

    Reads ``<pr_dir>/<set>_<method>.csv`` (column ``recall`` at 0, 0.01, ..., 1 and one
    interpolated-precision column per class with ground truth); AP is the mean over those 101
    recall points (COCO's sampling, at the evaluation's IoU 0.5).

    Returns:
        The requested classes that no set has a curve for (skipped, no panel).
    """
    from matplotlib.figure import Figure

    pr_dir = Path(pr_dir)
    if not pr_dir.is_dir():
        raise CurveError(f"{pr_dir}: PR folder not found")
    tables = {s: _read_pr(pr_dir / f"{s}_{method}.csv") for s in SET_STYLES if (pr_dir / f"{s}_{method}.csv").is_file()}
    if not tables:
        found = sorted(p.name for p in pr_dir.glob("*.csv"))
        raise CurveError(f"{pr_dir}: no <set>_{method}.csv for sets {list(SET_STYLES)}; found {found}")
    drawn = [c for c in dict.fromkeys(classes) if any(c in cols for _, cols in tables.values())]
    skipped = [c for c in dict.fromkeys(classes) if c not in drawn]
    panels = [*drawn, None]  # None: the mean over classes
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 3.2 * nrows + 0.5), dpi=120, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True)).ravel()
    for ax, cls in zip(axes, panels, strict=False):
        for s, (recall, cols) in tables.items():
            label, color, dash = SET_STYLES[s]
            precision = np.mean(list(cols.values()), axis=0) if cls is None else cols.get(cls)
            if precision is not None:
                ap = float(np.mean(precision))
                ax.plot(recall, precision, color=color, ls=dash, lw=1.6, label=f"{label} ({'mAP' if cls is None else 'AP'} {ap:.3f})")
        title = f"mean of {len(next(iter(tables.values()))[1])} classes" if cls is None else cls
        ax.set(title=title, xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=7, frameon=False)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols:]:
        ax.set_xlabel("recall")
    for ax in axes[::ncols]:
        ax.set_ylabel("precision")
    fig.suptitle(f"precision-recall at IoU 0.5 ({method}): " + " / ".join(SET_STYLES[s][0] for s in tables))
    save_figure(fig, out_png)
    return skipped

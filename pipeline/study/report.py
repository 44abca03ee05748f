"""The study's outputs: effects table (JSON, Markdown), per-run table (CSV) and a forest plot (PNG)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path, write_json, write_text
from pipeline.study.effects import Effect, RunResult

SETS = ("hr", "sr", "srgan", "bicubic", "lr")
#: (set, metric) columns of the means and runs tables: mAP@0.5 per set, then small-object mAP on HR.
COLUMNS = tuple((s, "map") for s in SETS) + (("hr", "map_small"),)


def _fmt(x: float | None) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.3f}"


def _signed(x: float) -> str:
    return "—" if not np.isfinite(x) else f"{x:+.3f}"


def effects_rows(effects: Sequence[Effect]) -> list[dict]:
    return [{"effect": e.label, "variant": e.variant, "metric": e.metric, **e.interval.as_dict(),
             "seeds": e.seeds, "seed_sd": None if e.seed_sd is None else round(e.seed_sd, 6)} for e in effects]


def run_rows(runs: Sequence[RunResult], method: str) -> list[dict]:
    rows = []
    for r in runs:
        row: dict = {"run": r.name, "variant": r.variant, "seed": r.seed}
        for s in SETS:
            for metric in ("map", "map_small"):
                res = r.bootstrap["results"].get(f"{s}.{method}.{metric}")
                if res is not None:
                    row[f"{s}.{metric}"] = res["value"]
                    row[f"{s}.{metric}.lo"] = res["lo"]
                    row[f"{s}.{metric}.hi"] = res["hi"]
        rows.append(row)
    return rows


def _header(s: str, m: str) -> str:
    return f"{s.upper()}{' small' if m == 'map_small' else ''}"


def means_table(rows: Sequence[dict], method: str) -> list[str]:
    """Markdown lines: per variant and set, the mean mAP over its seeds ± their standard deviation."""
    columns = [c for c in COLUMNS if any(f"{c[0]}.{c[1]}" in r for r in rows)]
    lines = ["## Means over seeds", "",
             f"mAP@0.5 with {method.upper()}: mean over a variant's seeds ± their standard deviation "
             "(retraining noise; the intervals above also cover the test images).", "",
             "| variant | seeds | " + " | ".join(_header(s, m) for s, m in columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        cells = []
        for s, m in columns:
            values = np.array([r[f"{s}.{m}"] for r in mine if r.get(f"{s}.{m}") is not None], dtype=float)
            values = values[np.isfinite(values)]
            sd = f" ± {np.std(values, ddof=1):.3f}" if values.size > 1 else ""
            cells.append(f"{values.mean():.3f}{sd}" if values.size else "—")
        lines.append(f"| {variant} | {len(mine)} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(effects: Sequence[Effect], runs: Sequence[RunResult], method: str, command: str,
             wall_s: float | None, forest_png: str) -> str:
    level = effects[0].interval.level if effects else 0.95
    n_images = runs[0].bootstrap.get("n_images") if runs else None
    rows = run_rows(runs, method)
    lines = [
        "# Study report", "",
        f"Command: `{command}`" + (f" — wall time {wall_s / 60:.1f} min" if wall_s is not None else ""), "",
        f"{len(runs)} runs; mAP@0.5 (VOC all-point) with {method.upper()} unless stated; "
        f"{int(level * 100)} % intervals from a bootstrap over training seeds and the {n_images} test images "
        "(a difference whose interval excludes 0 is resolved; the sign is reported whatever it is).", "",
        "## Effects", "",
        "| effect | variant | metric | estimate | interval | seeds | seed SD |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    for e in effects:
        iv = e.interval
        resolved = "" if not (np.isfinite(iv.lo) and np.isfinite(iv.hi)) or iv.lo <= 0 <= iv.hi else " *"
        lines.append(f"| {e.label} | {e.variant} | {e.metric} | {_signed(iv.value)}{resolved} | "
                     f"[{_signed(iv.lo)}, {_signed(iv.hi)}] | {e.seeds} | "
                     f"{'—' if e.seed_sd is None else f'{e.seed_sd:.3f}'} |")
    lines += ["", "\\* interval excludes 0.", "", f"![forest plot]({forest_png})", ""]
    lines += means_table(rows, method)
    lines += ["## Runs", "",
              "| run | variant | seed | " + " | ".join(f"{_header(s, m)} mAP" for s, m in COLUMNS) + " |",
              "|---|---|---:|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = ["—" if (v := row.get(f"{s}.{m}")) is None else
                 f"{v:.3f} [{_fmt(row[f'{s}.{m}.lo'])}, {_fmt(row[f'{s}.{m}.hi'])}]" for s, m in COLUMNS]
        lines.append(f"| {row['run']} | {row['variant']} | {row['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def forest_plot(effects: Sequence[Effect], path: Path) -> None:
    """One row per effect: estimate and interval, a line at zero (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(effects), 1)
    fig, ax = plt.subplots(figsize=(8, 0.32 * n + 1.2))
    ys = np.arange(len(effects))[::-1]
    colours = {"map": "#0072B2", "map_small": "#D55E00"}  # Okabe-Ito
    for y, e in zip(ys, effects, strict=True):
        iv = e.interval
        c = colours.get(e.metric, "#000000")
        ax.plot([iv.lo, iv.hi], [y, y], color=c, lw=2)
        ax.plot([iv.value], [y], "o", color=c, ms=5)
    ax.axvline(0.0, color="#555555", lw=1, ls="--")
    ax.set_yticks(ys, [f"{e.label} · {e.variant} · {e.metric}" for e in effects], fontsize=8)
    ax.set_xlabel(f"difference in mAP@0.5 ({int((effects[0].interval.level if effects else 0.95) * 100)} % interval)")
    for metric, c in colours.items():
        ax.plot([], [], "o-", color=c, label=metric)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Study effects")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)


def write_study(out: Path, effects: Sequence[Effect], runs: Sequence[RunResult], method: str, command: str,
                wall_s: float | None) -> str:
    """Write effects.json, runs.csv, forest.png and report.md under ``out``; return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "effects.json", {"method": method, "effects": effects_rows(effects)})
    rows = run_rows(runs, method)
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    write_text(out / "runs.csv", buf.getvalue())
    forest_plot(effects, out / "forest.png")
    md = markdown(effects, runs, method, command, wall_s, "forest.png")
    write_text(out / "report.md", md)
    return md

"""The flat evaluation metrics (``"<set>.<method>.<metric>"``) as small tables, in text or Markdown."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence

from pipeline.atomic import write_text

Cell = float | int | str | None


def nest(metrics: Mapping[str, float | None]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{"hr.nms.map": v}`` -> ``{"hr": {"nms": {"map": v}}}``, in the order the keys come.

    Raises:
        ValueError: a key is not ``<set>.<method>.<metric>``.
    """
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for key, value in metrics.items():
        parts = key.split(".")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"metric key {key!r} is not '<set>.<method>.<metric>'")
        s, m, k = parts
        out.setdefault(s, {}).setdefault(m, {})[k] = value
    return out


def sets_by_methods(
    metrics: Mapping[str, float | None], metric: str, order: Sequence[str] = ()
) -> tuple[list[str], list[list[Cell]]]:
    """Header and rows of one metric: a row per set (those in ``order`` first), a column per method."""
    nested = nest(metrics)
    methods = list(dict.fromkeys(m for per_set in nested.values() for m in per_set))
    sets = [s for s in order if s in nested] + [s for s in nested if s not in order]
    rows: list[list[Cell]] = [[s, *(nested[s].get(m, {}).get(metric) for m in methods)] for s in sets]
    return ["set", *methods], rows


def fmt(value: Cell, digits: int = 4) -> str:
    """A cell as text: ``-`` for undefined, floats to ``digits`` decimals."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def text_table(header: Sequence[str], rows: Sequence[Sequence[Cell]], digits: int = 4) -> str:
    """A plain aligned table (first column left, the others right-aligned)."""
    cells = [list(header), *[[fmt(v, digits) for v in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        parts = [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV atomically; a name with a comma or a quote is quoted as the csv module does."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def _md_escape(text: str) -> str:
    """A cell that stays one cell and shows as written: ``|`` escaped, HTML characters as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Cell]], digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    head = "| " + " | ".join(_md_escape(h) for h in header) + " |"
    rule = "|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|"
    body = ["| " + " | ".join(_md_escape(fmt(v, digits)) for v in r) + " |" for r in rows]
    return "\n".join([head, rule, *body])

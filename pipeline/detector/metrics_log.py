"""A tiny metrics-logger protocol and a file writer in dvclive's layout.

:class:`TsvLogger` writes, under its directory (``<out>/dvclive`` by default)::

    plots/metrics/train/<name>.tsv   one per metric, columns ``timestamp  step  <name>``
    metrics.json                     latest value of every metric + ``step`` (atomic)

which is what ``dvclive.Live(dir).log_metric("train/<name>", v)`` + ``next_step()``
produce, so ``dvc plots show`` renders loss/LR curves from the same paths whether the
core wrote them or a DVC/Prefect wrapper passes a dvclive-backed logger instead.
The core never imports dvc/dvclive.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Protocol

from pipeline.atomic import write_json


class MetricsLogger(Protocol):
    """What :func:`pipeline.detector.train.train` needs from a logger."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar ``metrics`` at training ``step``."""

    def close(self) -> None:
        """Flush and release files."""


class NullLogger:
    """Discards everything (non-zero DDP ranks)."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


class TsvLogger:
    """dvclive-layout TSV + JSON writer.

    Args:
        directory: root (e.g. ``<out>/dvclive``).
        prefix: metric namespace, a sub-folder of ``plots/metrics``.
        resume_step: keep rows with ``step <= resume_step`` of existing files and drop
            later ones (an interrupted run's tail), so a resumed curve has no duplicates;
            ``None`` starts fresh.
    """

    def __init__(self, directory: str | os.PathLike[str], prefix: str = "train", resume_step: int | None = None):
        self.dir = Path(directory)
        self.plots = self.dir / "plots" / "metrics" / prefix
        self.prefix = prefix
        self.plots.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, object] = {}
        self._latest: dict[str, float] = {}
        for tsv in self.plots.glob("*.tsv"):
            if resume_step is None:
                tsv.unlink()
            else:
                _truncate_after(tsv, resume_step)

    def log(self, metrics: dict[str, float], step: int) -> None:
        now = time.time()
        for name, value in metrics.items():
            value = float(value)
            f = self._files.get(name)
            if f is None:
                path = self.plots / f"{name}.tsv"
                new = not path.exists() or path.stat().st_size == 0
                f = self._files[name] = path.open("a")
                if new:
                    f.write(f"timestamp\tstep\t{name}\n")
            f.write(f"{now:.3f}\t{step}\t{value:.8g}\n")
            f.flush()
            self._latest[name] = value
        summary = {self.prefix: {k: (v if math.isfinite(v) else None) for k, v in self._latest.items()}}
        summary["step"] = step
        write_json(self.dir / "metrics.json", summary)

    def close(self) -> None:
        for f in self._files.values():
            f.close()  # type: ignore[attr-defined]
        self._files.clear()


def _truncate_after(tsv: Path, step: int) -> None:
    lines = tsv.read_text().splitlines(keepends=True)
    if not lines:
        return
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.strip() and int(ln.split("\t")[1]) <= step]
    if len(kept) != len(lines):
        from pipeline.atomic import write_text

        write_text(tsv, "".join(kept))

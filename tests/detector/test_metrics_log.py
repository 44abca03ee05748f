"""The dvclive-layout metrics writer."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.detector.metrics_log import TsvLogger


def _rows(path: Path) -> list[list[str]]:
    return [ln.split("\t") for ln in path.read_text().splitlines()]


def test_tsv_layout_summary_and_resume_truncation(tmp_path: Path) -> None:
    lg = TsvLogger(tmp_path / "dvclive")
    for step in (10, 20, 30):
        lg.log({"loss": 1.0 / step, "lr": 0.1}, step)
    lg.close()
    loss = tmp_path / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv"
    rows = _rows(loss)
    assert rows[0] == ["timestamp", "step", "loss"] and [r[1] for r in rows[1:]] == ["10", "20", "30"]
    assert float(rows[2][2]) == 0.05
    summary = json.loads((tmp_path / "dvclive" / "metrics.json").read_text())
    assert summary == {"train": {"loss": 1.0 / 30, "lr": 0.1}, "step": 30}

    # resuming from step 20 drops the interrupted run's later rows, then appends
    lg = TsvLogger(tmp_path / "dvclive", resume_step=20)
    lg.log({"loss": 0.5}, 30)
    lg.close()
    assert [r[1] for r in _rows(loss)[1:]] == ["10", "20", "30"]
    assert float(_rows(loss)[-1][2]) == 0.5
    # a fresh run starts new files
    TsvLogger(tmp_path / "dvclive").close()
    assert not loss.exists()

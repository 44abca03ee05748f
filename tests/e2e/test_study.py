"""The study command end to end: a 2 variants × 2 seeds grid through DVC's experiment queue, on tiny params."""

from __future__ import annotations

import json
import sys

import pytest

pytestmark = pytest.mark.slow


def test_study_queues_the_grid_and_reports_effects_with_intervals(baseline):
    project = baseline  # `dvc repro` on TINY params (200 bootstrap resamples), committed as the baseline
    proc = project.run(sys.executable, "-m", "pipeline.study", "--variants", "ssd", "shallow", "--seeds", "2",
                       timeout=1800)
    out = project.root / "data/study"
    names = [f"study-{v}-s{s}" for v in ("ssd", "shallow") for s in (0, 1)]
    runs = (out / "runs.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in runs[1:]] == names
    assert [r.split(",")[1:3] for r in runs[1:]] == [["ssd", "0"], ["ssd", "1"], ["shallow", "0"], ["shallow", "1"]]

    effects = json.loads((out / "effects.json").read_text())["effects"]
    labels = {(e["effect"], e["variant"], e["metric"]) for e in effects}
    for variant in ("ssd", "shallow"):
        for label in ("SR − bicubic", "SR − LR", "HR − LR", "Soft-NMS − NMS (HR)"):
            assert (label, variant, "map") in labels
    assert ("shallow − ssd (HR)", "shallow", "map") in labels
    for e in effects:
        assert e["seeds"] == 2
        if e["value"] is not None:
            assert e["lo"] <= e["value"] <= e["hi"]
    report = (out / "report.md").read_text()
    assert "| HR − LR | ssd | map |" in report and all(n in report for n in names)
    assert (out / "forest.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Effects" in proc.stdout

    # Each run's evaluation is its own: the train seed reached training (different weights, same test set).
    listed = project.dvc("exp", "show", "--no-pager", "--csv").stdout
    assert all(n in listed for n in names)
    # The same command again resumes: all four are kept (none queued), the report is the same.
    again = project.run(sys.executable, "-m", "pipeline.study", "--variants", "ssd", "shallow", "--seeds", "2")
    assert again.stdout.count("finished earlier on this baseline, kept") == 4 and "queued" not in again.stdout
    assert json.loads((out / "effects.json").read_text())["effects"] == effects, again.stdout

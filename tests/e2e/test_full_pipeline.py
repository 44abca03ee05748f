"""The whole pipeline under DVC on tiny params: every stage, the evaluation matrix, variants via dvc exp."""

from __future__ import annotations

import json

import pytest

from .conftest import METHODS, SETS

pytestmark = pytest.mark.slow


def test_repro_builds_every_set_and_the_full_matrix_then_compares_variants(baseline):
    project = baseline  # `dvc repro` on TINY params, committed as the baseline (shared)
    root = project.root
    metrics = json.loads((root / "data/eval/metrics.json").read_text())
    for s in SETS:
        for m in METHODS:
            for k in ("map", "map_07", "coco_ap", "ap_small", "ar100"):
                assert f"{s}.{m}.{k}" in metrics, f"{s}.{m}.{k} missing"
    for s in SETS:
        for m in METHODS:
            assert (root / f"data/eval/detections/{s}_{m}.json").is_file()
            assert (root / f"data/eval/pr/{s}_{m}.csv").is_file()
    sr = json.loads((root / "data/metrics/sr_quality.json").read_text())
    assert set(sr) >= {"sr", "bicubic"}
    assert (root / "data/models/detector/dvclive/plots/metrics/train/loss.tsv").is_file()
    assert (root / "data/figures/sr_side_by_side.png").stat().st_size > 0

    shown = project.dvc("metrics", "show").stdout  # the headline summary only, within 160 columns
    assert "hr.soft" in shown and "psnr_gain" in shown and max(map(len, shown.splitlines())) <= 160, shown
    assert "## Glossary" in (root / "data/eval/report.md").read_text()
    assert (root / "data/eval/report.html").stat().st_size > 0

    plots = project.dvc("plots", "show", "--out", "plots_html").stdout
    html = (root / "plots_html/index.html").read_text()
    assert "hr_softnms" in html and "loss" in html, plots

    # A variant as a DVC experiment: only training and evaluation re-run.  (Neither is ever restored
    # from DVC's run cache: both have uncached outputs, so a study's earlier identical run can't hide them.)
    exp = project.dvc("exp", "run", "-n", "shallow", "-S", "model.variant=shallow")
    ran = {line.split("'")[1] for line in exp.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"source", "train", "evaluate"}, exp.stdout  # source: the data fingerprint, run every time
    diff = project.dvc("metrics", "diff", "HEAD", "--all").stdout
    # Side by side: the committed baseline's value and the experiment's value on one line.
    line = next(row for row in diff.splitlines() if " hr.soft " in f" {row} ")
    numbers = [tok for tok in line.split() if tok.replace(".", "", 1).replace("-", "", 1).replace("e", "", 1).isdigit()]
    assert len(numbers) >= 2, diff
    table = project.dvc("exp", "show", "--no-pager", "--csv").stdout
    assert "shallow" in table and "model.variant" in table

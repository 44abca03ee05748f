"""The data stages under real DVC: repro, no-op second run, selective re-run, metrics, plots, push/pull."""

from __future__ import annotations

import shutil

import pytest

from pipeline.data.degrade import lr_size
from pipeline.data.schema import read_records

pytestmark = pytest.mark.slow

DATA_STAGES = ("stats", "degrade")


def _ran(stdout: str) -> set[str]:
    return {line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage")}


def test_data_stages_repro_noop_selective_metrics_plots_and_remote(project):
    first = project.dvc("repro", *DATA_STAGES)
    assert _ran(first.stdout) == {"source", "fetch", "ingest", "stats", "degrade"}, first.stdout
    hr, classes = read_records(project.root / "data/sets/hr")
    lr, _ = read_records(project.root / "data/sets/lr")
    assert len(hr) == len(lr) > 0 and classes

    second = project.dvc("repro", *DATA_STAGES)
    assert _ran(second.stdout) == {"source"}, second.stdout  # always runs: the source's content fingerprint
    assert "Stage 'fetch' didn't change, skipping" in second.stdout

    project.set_params({"degrade": {"scale": 2}})
    third = project.dvc("repro", *DATA_STAGES)
    assert _ran(third.stdout) == {"source", "degrade"}, third.stdout
    lr2, _ = read_records(project.root / "data/sets/lr")
    assert (lr2[0].width, lr2[0].height) == lr_size(hr[0].width, hr[0].height, 2)

    # stats.json is an out (the default `dvc metrics show` is the evaluation's headline); named, it shows
    metrics = project.dvc("metrics", "show", "data/metrics/stats.json").stdout
    assert "data/metrics/stats.json" in metrics and "size_measure" in metrics, metrics
    plots = project.dvc("plots", "show", "--out", "plots_html")
    html = (project.root / "plots_html" / "index.html").read_text()
    assert "size_histogram" in html, plots.stdout

    project.run("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "lock")
    project.dvc("push")
    shutil.rmtree(project.root / "data/sets")
    shutil.rmtree(project.root / ".dvc/cache")
    project.dvc("pull", "degrade")
    assert [r.image_id for r in read_records(project.root / "data/sets/lr")[0]] == [r.image_id for r in lr2]

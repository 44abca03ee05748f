"""`dvc plots show` draws every declared plot with the network off (issue 11 item 3).

A copy of the project (its dvc.yaml, real DVC repo) gets the offline template from
scripts/plots_template.py and small plot sources written by the pipeline's own writers;
DVC renders the page and headless Chromium, with name resolution and every proxy request
failing, counts the Vega views that drew data. DVC's default (CDN) page is the control: it
draws nothing under the same flags, so the network really is off.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from dvc_render.vega import VegaRenderer
from PIL import Image

from pipeline.curves import training_curves
from pipeline.data.stats import PER_CLASS_COLUMNS, write_csv
from pipeline.detector.metrics_log import TsvLogger
from pipeline.evaluation.plots import write_pr_csv
from pipeline.evaluation.voc import ClassCurve
from tests.e2e.browser import chromium, render
from tests.e2e.conftest import METHODS, SETS, copy_project

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None, reason="no Chromium on PATH: scripts/bootstrap.sh installs Debian's "
                                                  "chromium-headless-shell only where apt-get runs as root"),
]

CLASSES = ["disc", "ring", "square", "triangle", "cross"]


def write_plot_sources(root: Path) -> None:
    """Every plot source dvc.yaml declares, small, through the writers the stages use."""
    log = TsvLogger(root / "data/models/detector/dvclive")
    for step in range(0, 30, 5):
        log.log({"loss": 9.0 / (1 + step), "cls": 5.0 / (1 + step), "box": 4.0 / (1 + step), "lr": 0.01}, step)
    log.close()
    training_curves(root / "data/models/detector/dvclive", root / "data/figures/training_curves.png")
    rng = np.random.default_rng(0)
    recall = np.linspace(0, 1, 11)
    long_sets = []
    for s in SETS:
        for m in METHODS:
            curves = [ClassCurve(np.linspace(0.05, 0.8, 20), np.sort(rng.uniform(0.2, 1, 20))[::-1], 5)
                      for _ in CLASSES]
            write_pr_csv(root / f"data/eval/pr/{s}_{m}.csv", CLASSES, curves)  # wide form
            # long forms (pipeline/evaluation/pr_tables.py): per set+method by class, and the mean per set
            rows = [{"recall": r, "precision": 1 - r / (2 + i), "class": c}
                    for i, c in enumerate(["mean", *CLASSES[:2]]) for r in recall]
            write_csv(root / f"data/eval/pr_plots/{s}_{m}.csv", rows, ("recall", "precision", "class"))
            long_sets += [{"recall": r, "precision": 1 - r / 3, "set": s, "method": m} for r in recall]
    write_csv(root / "data/eval/pr_sets.csv", long_sets, ("recall", "precision", "set", "method"))
    write_csv(root / "data/plots/stats/size_histogram.csv",
              [{"sqrt_area": 8.0 * i, "count": c} for i, c in enumerate([3, 9, 4, 1])], ("sqrt_area", "count"))
    write_csv(root / "data/plots/stats/per_class.csv",
              [{"rank": i, "class": c, "mean_rel_area": 0.01 * (i + 1)} for i, c in enumerate(CLASSES)],
              PER_CLASS_COLUMNS)
    write_csv(root / "data/models/sr/loss_log.csv", [{"step": i, "pixel": 0.01 / (i + 1)} for i in range(5)],
              ("step", "pixel"))
    write_csv(root / "data/models/srgan/loss_log.csv", [{"step": i, "perceptual": 0.5 / (i + 1)} for i in range(5)],
              ("step", "perceptual"))
    picture = Image.new("RGB", (32, 24), (200, 30, 30))
    for png in ("size_histogram", "copy_paste_examples", "sr_side_by_side"):
        picture.save(root / f"data/figures/{png}.png")
    (root / "data/eval/figures").mkdir(parents=True)
    picture.save(root / "data/eval/figures/hr_softnms_0.png")


def vega_plots(shown: dict) -> list[str]:
    """Ids of the non-image plots in ``dvc plots show --json`` output (one with no data points counts too)."""
    return [pid for pid, entries in shown["data"].items() if all(e["type"] != "image" for e in entries)]


def test_every_declared_plot_draws_offline(tmp_path):
    proj = copy_project(tmp_path / "proj")
    root = proj.root
    made = proj.run(sys.executable, "scripts/plots_template.py")
    assert "written" in made.stdout, made.stdout
    write_plot_sources(root)

    shown = json.loads(proj.dvc("plots", "show", "--json").stdout)
    assert not shown.get("errors"), f"declared plot sources this test does not write: {shown['errors']}"
    declared = vega_plots(shown)
    assert len(declared) >= 15  # 4 training, 1 SR loss, 2 stats, one per PR file (8), top-level PR plots

    proj.dvc("plots", "show", "-o", "dvc_plots")
    page = (root / "dvc_plots/index.html").read_text()
    assert "<script src" not in page  # nothing to fetch: the bundle is inline
    offline = render(root / "dvc_plots/index.html", tmp_path / "profile")
    assert offline.errors == []
    assert offline.calls == len(declared)
    assert len(offline.drawn) == len(declared), offline.views

    # Control: the same page with DVC's default script tags (Vega from a CDN) draws nothing
    # under the same flags, so the network really is off.
    head, bundle_and_rest = page.split("<script", 1)
    cdn = root / "dvc_plots/cdn.html"
    cdn.write_text(head + VegaRenderer.SCRIPTS + bundle_and_rest.split("</script>", 1)[1])
    control = render(cdn, tmp_path / "profile")
    assert control.drawn == [] and any("vegaEmbed" in e for e in control.errors), control

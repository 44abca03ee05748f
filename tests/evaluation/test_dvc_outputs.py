"""The evaluate outputs as DVC sees them, in a real git + DVC repo with this project's dvc.yaml:
dataset-neutral plots (no class names in the config; COCO-like names with spaces draw), the headline
summary as the only default metrics (160 columns), training metrics tracked by git."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.data.embedded import EMBEDDED_CLASSES
from pipeline.evaluation.summary import build_summary
from pipeline.postprocess import PostprocessConfig
from tests.evaluation.conftest import COCO_LIKE

REPO = Path(__file__).resolve().parents[2]
DVC = [sys.executable, "-m", "dvc"]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture(scope="module")
def dvc_repo(coco_like_eval, tmp_path_factory) -> Path:
    """A git + DVC repo holding the project's dvc.yaml/params.yaml/.gitignore/.dvc/plots and the eval outputs."""
    root = tmp_path_factory.mktemp("dvc_outputs")
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    assert run(["git", "init", "-q"], root).returncode == 0
    assert run([*DVC, "init", "-q"], root).returncode == 0
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")
    shutil.copytree(coco_like_eval[0], root / "data" / "eval")
    return root


def _strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_plot_definitions_name_no_class():
    config = yaml.safe_load((REPO / "dvc.yaml").read_text())
    plots = _strings(config.get("plots", [])) + _strings([s.get("plots", []) for s in config["stages"].values()])
    words = {w for s in plots for w in s.replace("/", " ").replace(".", " ").replace("_", " ").split()}
    named = words & {*EMBEDDED_CLASSES, "bottle", "pottedplant", "person", "cat", "dog", "plant"}
    assert not named, f"dvc.yaml plots name classes: {named}"
    for template in (REPO / ".dvc" / "plots").glob("*.json"):
        text = template.read_text()
        assert not [c for c in EMBEDDED_CLASSES if f'"{c}"' in text], template
    assert yaml.safe_load((REPO / "params.yaml").read_text())["evaluate"]["pr_classes"] == "auto"


def test_dvc_plots_show_draws_coco_like_names_without_missing_fields(dvc_repo):
    shown = run([*DVC, "plots", "show", "--json"], dvc_repo)
    assert shown.returncode == 0, shown.stderr
    assert "could not find provided field" not in (shown.stdout + shown.stderr).lower()
    result = json.loads(shown.stdout)
    eval_errors = [e for e in result.get("errors", []) if "data/eval" in e["name"]]
    assert not eval_errors  # (other stages' files are absent here: FileNotFoundError, expected)
    pr = {k: v for k, v in result["data"].items() if k.startswith("data/eval/pr_plots/")}
    assert sorted(pr) == [f"data/eval/pr_plots/{s}_{m}.csv" for s in ("hr", "lr") for m in ("nms", "softnms")]
    spec = pr["data/eval/pr_plots/hr_softnms.csv"][0]["content"]
    assert {row["class"] for row in spec["data"]["values"]} == {"mean", *COCO_LIKE}
    by_set = result["data"]["pr_mean_by_set"][0]["content"]
    assert {(r["set"], r["method"]) for r in by_set["data"]["values"]} == {
        (s, m) for s in ("hr", "lr") for m in ("nms", "softnms")}
    vlc = pytest.importorskip("vl_convert", reason="vl-convert-python (dev extra) renders the Vega-Lite specs")
    svg = vlc.vegalite_to_svg(spec)  # the template is valid Vega-Lite and colours by class: names in the legend
    assert "potted plant" in svg and "pink|x" in svg
    assert ">lr<" in vlc.vegalite_to_svg(by_set)


def test_dvc_metrics_show_is_the_headline_summary_within_160_columns(dvc_repo):
    methods = {"nms": PostprocessConfig("nms"), "softnms": PostprocessConfig("soft_linear")}
    matrix = {f"{s}.{m}.{k}": 0.123456 for s in ("hr", "sr", "bicubic", "lr") for m in methods
              for k in ("map", "ap_small")}  # fmt: skip
    summary = build_summary(matrix, methods, ["hr", "sr", "lr"], ["hr", "sr"], {"psnr_gain_db": -0.12345},
                            {"train": {"loss": 12.34567, "img_per_s": 1234.56}})
    (dvc_repo / "data" / "eval" / "summary.json").write_text(json.dumps(summary))
    shown = run([*DVC, "metrics", "show"], dvc_repo)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[1:]] == ["data/eval/summary.json"]  # the only metrics file
    assert len(lines[0].split()) == 1 + 11 and "hr.soft" in lines[0] and "psnr_gain" in lines[0]
    assert max(len(ln) for ln in lines) <= 160, shown.stdout
    full = run([*DVC, "metrics", "show", "data/eval/metrics.json"], dvc_repo)  # the whole matrix, on request
    assert full.returncode == 0 and "hr.softnms.map" in full.stdout


def test_training_metrics_and_headline_files_are_tracked_by_git(dvc_repo):
    tracked = ["data/models/detector/dvclive/metrics.json", "data/models/detector/dvclive/plots/metrics/train/loss.tsv",
               "data/eval/summary.json", "data/eval/metrics.json", "data/eval/report.md",
               "data/eval/pr_plots/hr_nms.csv", "data/eval/pr_sets.csv"]
    ignored = ["data/models/detector/model.pt", "data/models/detector/checkpoints/last.pt",
               "data/models/sr/generator.pth", "data/eval/report.html", "data/eval/detections/hr_nms.json",
               "data/eval/figures/pr_hr_nms.png"]
    for rel in tracked + ignored:
        (dvc_repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (dvc_repo / rel).touch()
    for rel in tracked:
        assert run(["git", "check-ignore", "-q", rel], dvc_repo).returncode == 1, f"{rel} is git-ignored"
    for rel in ignored:
        assert run(["git", "check-ignore", "-q", rel], dvc_repo).returncode == 0, f"{rel} is not git-ignored"


def test_class_names_with_commas_and_quotes_round_trip_through_every_csv(coco_like_eval):
    import csv

    out = coco_like_eval[0]
    wide = list(csv.reader((out / "pr" / "hr_softnms.csv").open()))
    assert wide[0] == ["recall", *COCO_LIKE] and all(len(r) == 3 for r in wide)
    per_class = list(csv.DictReader((out / "per_class_ap.csv").open()))
    assert {r["class"] for r in per_class} == set(COCO_LIKE) and len(per_class) == 2 * 2 * 2
    long = list(csv.DictReader((out / "pr_plots" / "lr_nms.csv").open()))
    assert {r["class"] for r in long} == {"mean", *COCO_LIKE} and len(long) == 3 * 101

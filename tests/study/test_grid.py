"""The study refuses to queue from a workspace that differs from the committed baseline."""

import subprocess

import pytest

from pipeline.errors import PipelineError
from pipeline.study.grid import require_clean_workspace


def _git(root, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root, check=True,
                   capture_output=True)


def test_a_workspace_left_by_dvc_exp_run_is_refused_with_the_files_named(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("train:\n  steps: 1200\n")
    _git(tmp_path, "add", "params.yaml")
    _git(tmp_path, "commit", "-qm", "baseline")
    (tmp_path / "scratch.txt").write_text("untracked files are not queued")
    require_clean_workspace(tmp_path)  # clean apart from untracked files: fine

    (tmp_path / "params.yaml").write_text("train:\n  steps: 400\n")  # what `dvc exp run -S train.steps=400` leaves
    with pytest.raises(PipelineError, match=r"params\.yaml differ from HEAD.*git checkout -- \."):
        require_clean_workspace(tmp_path)


def test_outside_a_git_repository_is_an_error(tmp_path):
    with pytest.raises(PipelineError, match="not a git repository"):
        require_clean_workspace(tmp_path)


def test_a_mistyped_override_or_a_baseline_without_report_only_stops_before_anything_is_queued(tmp_path):
    from pipeline.study.__main__ import run_study

    (tmp_path / "params.yaml").write_text("train:\n  steps: 1200\n")
    with pytest.raises(PipelineError, match=r"-S train\.stesp: no key 'stesp' under train.*did you mean 'steps'"):
        run_study(["--repo", str(tmp_path), "-S", "train.stesp=600"])
    with pytest.raises(PipelineError, match="--baseline .* use it with --report-only"):
        run_study(["--repo", str(tmp_path), "--baseline", "abc123"])


def test_a_variant_with_its_own_params_is_an_arm_with_a_valid_experiment_name(tmp_path):
    from pipeline.study.grid import Cell, grid

    assert Cell("shallow+fem", 0).name == "study-shallow_fem-s0"  # plain variants keep their names
    arm = Cell("shallow@model.small_iou_threshold=0.5", 2)
    assert arm.name == "study-shallow-model.small_iou_threshold=0.5-s2"
    assert arm.overrides(["train.steps=600"]) == ["model.variant=shallow", "model.small_iou_threshold=0.5",
                                                  "train.seed=2", "train.steps=600"]
    odd = Cell("ssd@data.classes=[a, b]", 0)
    for cell in (arm, odd):  # DVC refuses names git refuses: check with git itself
        subprocess.run(["git", "check-ref-format", f"refs/exps/ab/cdef/{cell.name}"], check=True)
    with pytest.raises(PipelineError, match="model.variant is set by the study itself"):
        grid(["ssd@model.variant=fem"], 1)
    with pytest.raises(PipelineError, match="no model.variant before '@'"):
        grid(["@train.lr=0.1"], 1)
    with pytest.raises(PipelineError, match="map to the same experiment names"):
        grid(["ssd@train.milestones=[1]", "ssd@train.milestones=(1)"], 1)


def test_a_mistyped_key_in_a_variants_own_params_stops_before_anything_is_queued(tmp_path):
    from pipeline.study.__main__ import run_study

    (tmp_path / "params.yaml").write_text("model:\n  small_iou_threshold: 0.3\n")
    with pytest.raises(PipelineError, match=r"model\.small_iou_treshold: no key 'small_iou_treshold' under model"):
        run_study(["--repo", str(tmp_path), "--variants", "shallow", "shallow@model.small_iou_treshold=0.5"])

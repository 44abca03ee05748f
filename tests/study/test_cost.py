"""The study's cost line, from the baseline's measured training speed and the (overridden) params."""

import json

from pipeline.study.cost import TRAIN_METRICS, estimate


def _repo(tmp_path, img_per_s=12.0, step=1200):
    (tmp_path / "params.yaml").write_text("train:\n  steps: 1200\n  batch_size: 8\n")
    m = tmp_path / TRAIN_METRICS
    m.parent.mkdir(parents=True)
    m.write_text(json.dumps({"step": step, "train": {"img_per_s": img_per_s, "loss": 4.0}}))
    return tmp_path


def test_cost_is_steps_times_batch_over_measured_speed(tmp_path):
    line = estimate(_repo(tmp_path), runs=15)
    # 1200 * 8 / 12 = 800 s = 13.3 min per run; 15 runs = 3.3 h
    assert "15 runs × 1200 steps × batch 8 at the baseline's 12.0 img/s" in line
    assert "≈ 13.3 min of training per run, 3.3 h in all" in line


def test_overrides_change_the_estimate(tmp_path):
    line = estimate(_repo(tmp_path), runs=4, overrides=["train.steps=300", "train.batch_size=4", "train.steps=600"])
    assert "600 steps × batch 4" in line and "≈ 3.3 min" in line  # the last -S of a key wins, as in dvc


def test_unknown_without_a_baseline_or_with_a_broken_one(tmp_path):
    assert "unknown" in estimate(tmp_path, runs=2) and "dvc repro" in estimate(tmp_path, runs=2)
    repo = _repo(tmp_path, img_per_s=0.0)
    assert "unknown" in estimate(repo, runs=2) and "0.0 img/s" in estimate(repo, runs=2)
    (repo / TRAIN_METRICS).write_text("{not json")
    assert "unknown" in estimate(repo, runs=2)

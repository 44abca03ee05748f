"""Study effects: intervals over seeds and images from real per-run bootstrap documents."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.evaluation.bootstrap import samples_document
from pipeline.evaluation.voc import match_detections
from pipeline.study.effects import RunResult, seed_bootstrap, study_effects
from pipeline.study.report import write_study
from tests.evaluation.helpers import grid_fixture

CLASSES = ["a", "b", "c"]


def _degrade(detections, rng, noise):
    """The same detections with scores mixed with noise: a worse ranking."""
    return {k: dataclasses.replace(d, scores=(1 - noise) * d.scores + noise * rng.random(d.scores.size))
            for k, d in detections.items()}


def _run(name, variant, seed, records, detections, noise_lr):
    rng = np.random.default_rng(seed + 100)
    tables = {}
    for s, noise in (("hr", 0.0), ("lr", noise_lr)):
        for m in ("nms", "softnms"):
            dets = detections if noise == 0 else _degrade(detections, rng, noise)
            for metric, area in (("map", "all"), ("map_small", "small")):
                tables[f"{s}.{m}.{metric}"] = match_detections(records, dets, CLASSES, area_range=area)
    return RunResult(name, variant, seed, samples_document(tables, resamples=200, seed=0,
                                                           methods={"nms": "nms", "soft": "softnms"}))


@pytest.fixture(scope="module")
def runs():
    records, detections = grid_fixture(11, n_images=40)
    return [_run(f"{v}-s{s}", v, s, records, detections, noise)
            for v, noise in (("ssd", 0.9), ("shallow", 0.5)) for s in range(2)]


def test_within_and_between_run_effects_have_intervals_in_the_right_direction(runs):
    effects = {(e.label, e.variant, e.metric): e for e in study_effects(runs)}
    hr_lr = effects[("HR − LR", "ssd", "map")]
    assert hr_lr.seeds == 2 and hr_lr.interval.lo > 0  # LR = noisy ranking: clearly worse
    assert hr_lr.interval.lo <= hr_lr.interval.value <= hr_lr.interval.hi
    # HR results are identical across variants: variant − ssd on HR is exactly zero.
    v = effects[("shallow − ssd (HR)", "shallow", "map")]
    assert v.interval.value == v.interval.lo == v.interval.hi == 0.0
    # On LR, shallow's runs rank with less noise than ssd's (0.5 vs 0.9): shallow − ssd (LR) is the mean of
    # the same-seed differences, positive here.
    lr = effects[("shallow − ssd (LR)", "shallow", "map")]
    value = {(r.variant, r.seed): r.bootstrap["results"]["lr.nms.map"]["value"] for r in runs}
    expected = np.mean([value["shallow", s] - value["ssd", s] for s in (0, 1)])
    assert lr.seeds == 2 and lr.interval.value == pytest.approx(expected) and expected > 0
    assert lr.interval.lo <= lr.interval.value <= lr.interval.hi
    # No SR set in these runs: its comparisons are absent, not zero.
    assert not any(label.startswith("SR") or "(SR)" in label for label, _, _ in effects)


def test_seed_bootstrap_widens_with_seed_spread():
    rng = np.random.default_rng(0)
    images = rng.normal(0, 0.01, size=(1, 500))
    tight = seed_bootstrap(np.array([0.1, 0.1, 0.1]), 0.1 + np.repeat(images, 3, 0), 0.95, 0)
    spread = seed_bootstrap(np.array([0.0, 0.1, 0.2]), np.array([[0.0], [0.1], [0.2]]) + images, 0.95, 0)
    assert spread.hi - spread.lo > 3 * (tight.hi - tight.lo)
    assert spread.value == pytest.approx(0.1)


def test_runs_on_different_images_are_refused(runs):
    other = dataclasses.replace(runs[1], bootstrap={**runs[1].bootstrap, "images": "0" * 16})
    with pytest.raises(PipelineError, match="images"):
        study_effects([runs[0], other])


def test_report_files(runs, tmp_path):
    effects = study_effects(runs)
    md = write_study(tmp_path, effects, runs, "nms", "python -m pipeline.study --variants ssd shallow --seeds 2", 12.0)
    assert "| HR − LR | ssd | map |" in md and "[+" in md
    saved = json.loads((tmp_path / "effects.json").read_text())
    assert len(saved["effects"]) == len(effects) and {"lo", "hi", "value"} <= set(saved["effects"][0])
    assert (tmp_path / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "runs.csv").read_text().splitlines()[0].startswith("run,variant,seed,hr.map")
    means = md.split("## Means over seeds")[1].split("## Runs")[0]
    assert "| variant | seeds | HR | LR | HR small |" in means  # sets the runs lack are not columns
    for variant in ("ssd", "shallow"):
        mine = [r for r in runs if r.variant == variant]
        hr = [r.bootstrap["results"]["hr.nms.map"]["value"] for r in mine]
        lr = [r.bootstrap["results"]["lr.nms.map"]["value"] for r in mine]
        assert f"| {variant} | 2 | {np.mean(hr):.3f} ± {np.std(hr, ddof=1):.3f} | {np.mean(lr):.3f} ± " \
               f"{np.std(lr, ddof=1):.3f} |" in means

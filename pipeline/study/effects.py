"""Effects of the study with 95 % intervals over training seeds and test images.

Every run's evaluation stores, per result (``hr.nms.map``, ``sr.nms.map_small``, …), its
mAP on the same bootstrap resamples of the test images (:func:`pipeline.evaluation.bootstrap.
samples_document`; same images and resample seed in every run).  An effect is a difference of
two results, either within a run (SR − bicubic, Soft-NMS − NMS) or between two runs trained
with the same seed (variant − ssd).  Its interval is a two-level bootstrap: each replicate
draws the seeds with replacement and uses the replicate's image resample, and the effect is
the mean over the drawn seeds — so the interval covers seed-to-seed variation (retraining)
as well as which test images were drawn.  With one seed it covers images only, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.evaluation.bootstrap import BOOTSTRAP_METRICS, Interval, comparison_keys, document_difference

#: Test sets of the variant − baseline effects (the thesis compares SSD variants on HR, SR and LR).
BETWEEN_SETS = ("hr", "sr", "lr")


@dataclass(frozen=True)
class RunResult:
    """One finished run of the grid: its variant, seed and evaluation bootstrap document."""

    name: str
    variant: str
    seed: int
    bootstrap: Mapping[str, Any]


@dataclass(frozen=True)
class Effect:
    """A difference a − b averaged over seeds, with its interval and the seeds it rests on."""

    label: str
    variant: str
    metric: str
    interval: Interval
    seeds: int
    seed_sd: float | None  # between-seed standard deviation of the point differences (None: one seed)


def check_comparable(runs: Sequence[RunResult]) -> None:
    """Refuse runs evaluated on different test images or resamples: their differences would not pair."""
    if not runs:
        raise PipelineError("the study has no finished runs to compare")
    first = runs[0].bootstrap
    for r in runs[1:]:
        for key in ("images", "resamples", "seed"):
            if r.bootstrap.get(key) != first.get(key):
                raise PipelineError(
                    f"run {r.name!r} was evaluated with bootstrap {key} {r.bootstrap.get(key)!r}, "
                    f"run {runs[0].name!r} with {first.get(key)!r}: effects need the same test images and resamples"
                )


def seed_bootstrap(point_diffs: np.ndarray, sample_diffs: np.ndarray, level: float, seed: int) -> Interval:
    """Mean over seeds of per-seed differences; interval from resampling seeds and images together.

    point_diffs: (S,); sample_diffs: (S, B) — seed s's difference on image resample b.
    """
    n_seeds, n_resamples = sample_diffs.shape
    if n_seeds == 1:
        replicates = sample_diffs[0]
    else:
        draw = np.random.default_rng(seed).integers(0, n_seeds, size=(n_resamples, n_seeds))
        replicates = np.nanmean(sample_diffs[draw, np.arange(n_resamples)[:, None]], axis=1)
    finite = replicates[np.isfinite(replicates)]
    a = (1.0 - level) / 2.0
    lo, hi = (np.quantile(finite, [a, 1.0 - a]) if finite.size else (np.nan, np.nan))
    return Interval(float(np.nanmean(point_diffs)), float(lo), float(hi), level)


def _effect(label: str, variant: str, metric: str, pairs: list[tuple[float, np.ndarray]], level: float,
            seed: int) -> Effect | None:
    if not pairs:
        return None
    points = np.array([p for p, _ in pairs])
    samples = np.stack([s for _, s in pairs])
    sd = float(np.std(points, ddof=1)) if len(points) > 1 else None
    return Effect(label, variant, metric, seed_bootstrap(points, samples, level, seed), len(points), sd)


def study_effects(runs: Sequence[RunResult], baseline: str = "ssd", level: float = 0.95,
                  seed: int = 0) -> list[Effect]:
    """Within-run effects per variant (:data:`~pipeline.evaluation.bootstrap.COMPARISONS`), and
    variant − baseline with the same seeds on each of :data:`BETWEEN_SETS` that both runs evaluated,
    with the hard-NMS method, for each metric."""
    check_comparable(runs)
    by_variant: dict[str, dict[int, RunResult]] = {}
    for r in runs:
        by_variant.setdefault(r.variant, {})[r.seed] = r
    effects: list[Effect] = []
    for variant, seeds in by_variant.items():
        for metric in BOOTSTRAP_METRICS:
            labels = comparison_keys(next(iter(seeds.values())).bootstrap.get("methods", {}), metric)
            for label, (ka, kb) in labels.items():
                pairs = [d for r in seeds.values() if (d := document_difference(r.bootstrap, ka, kb)) is not None]
                if (e := _effect(label, variant, metric, pairs, level, seed)) is not None:
                    effects.append(e)
    base = by_variant.get(baseline, {})
    for variant, seeds in by_variant.items():
        if variant == baseline:
            continue
        common = sorted(set(seeds) & set(base))
        for test_set in BETWEEN_SETS:
            for metric in BOOTSTRAP_METRICS:
                pairs = []
                for s in common:
                    nms = seeds[s].bootstrap.get("methods", {}).get("nms")
                    key = f"{test_set}.{nms}.{metric}"
                    if nms is not None and (d := _between(seeds[s], base[s], key)) is not None:
                        pairs.append(d)
                label = f"{variant} − {baseline} ({test_set.upper()})"
                if (e := _effect(label, variant, metric, pairs, level, seed)) is not None:
                    effects.append(e)
    return effects


def _between(a: RunResult, b: RunResult, key: str) -> tuple[float, np.ndarray] | None:
    """Result ``key`` of run a minus the same result of run b, on the shared resamples."""
    both = {"results": {"a": a.bootstrap["results"].get(key), "b": b.bootstrap["results"].get(key)}}
    if both["results"]["a"] is None or both["results"]["b"] is None:
        return None
    return document_difference(both, "a", "b")

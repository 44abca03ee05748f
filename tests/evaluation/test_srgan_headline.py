"""The SRGAN set in the evaluation: one headline number, its paired comparisons, its report rows."""

from __future__ import annotations

import json

from pipeline.evaluation.bootstrap import within_run_effects
from pipeline.evaluation.config import EvaluateConfig
from pipeline.evaluation.report import _sr_quality
from pipeline.evaluation.summary import build_summary, summarise
from tests.evaluation.test_summary import METHODS, matrix

SETS = ("hr", "sr", "bicubic", "lr", "srgan")


def _flat(d, p=""):
    for k, v in d.items():
        yield from _flat(v, f"{p}{k}.") if isinstance(v, dict) else [(p + k, v)]


def test_srgan_headline_is_its_nms_map_alone_and_fits_160_columns(tmp_path):
    cfg = EvaluateConfig(methods={"nms": {"method": "nms"}, "softnms": {"method": "soft_linear"}})
    out = tmp_path / "eval"
    out.mkdir()
    s = summarise(out, matrix(SETS), cfg, {k: k for k in SETS}, "m.pt", "hr")
    assert s["srgan"] == {"nms": 0.9}  # sets hr, sr, bicubic, lr, srgan -> 0.5 + 0.1 * 4
    assert set(s) == {"hr", "sr", "lr", "srgan"}
    assert "srgan" not in summarise(out, matrix(SETS), cfg, {k: k for k in SETS if k != "srgan"}, "m.pt", "hr")
    # `dvc metrics show`: one column per key, within 160 columns with the longest values
    full = build_summary(matrix(SETS), METHODS, cfg.summary_sets, cfg.summary_small_sets, {"psnr_gain_db": -0.1234},
                         {"train": {"loss": 12.3456, "img_per_s": 1234.5}}, ["srgan"])
    cols = [max(len(k) + 2, len(str(v))) + 2 for k, v in _flat(full)]
    assert len(cols) == 12 and len("data/eval/summary.json") + sum(cols) <= 160


def _result(value: float, samples: list[float]) -> dict:
    return {"value": value, "lo": min(samples), "hi": max(samples), "samples": samples}


def test_srgan_comparisons_are_paired_with_sr_and_bicubic():
    results = {"sr.nms.map": _result(0.5, [0.4, 0.5, 0.6]), "bicubic.nms.map": _result(0.45, [0.4, 0.45, 0.5]),
               "srgan.nms.map": _result(0.4, [0.35, 0.4, 0.45])}
    doc = {"level": 0.95, "methods": {"nms": "nms"}, "results": results}
    effects = {e["effect"]: e for e in within_run_effects(doc)}
    assert set(effects) == {"SR − bicubic", "SRGAN − bicubic", "SRGAN − SR"}
    e = effects["SRGAN − SR"]
    assert round(e["value"], 6) == -0.1 and e["hi"] < 0  # every resample has SRGAN below SR by 0.05-0.15
    del results["srgan.nms.map"]
    assert {e["effect"] for e in within_run_effects(doc)} == {"SR − bicubic"}  # no srgan set, no SRGAN rows


def test_report_lists_the_srgan_quality():
    q = json.loads('{"sr": {"psnr": 32.1, "ssim": 0.8}, "srgan": {"psnr": 31.2, "ssim": 0.77}, '
                   '"bicubic": {"psnr": 31.0, "ssim": 0.75}, "psnr_gain_db": 1.1, "srgan_psnr_gain_db": 0.2, '
                   '"images": 60, "split": "test"}')
    text = _sr_quality(q)
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert [r.split("|")[1].strip() for r in rows[2:]] == ["sr", "srgan", "bicubic"]
    assert "SR - bicubic: +1.100 dB; SRGAN - bicubic: +0.200 dB" in text
    del q["srgan"], q["srgan_psnr_gain_db"]
    assert "srgan" not in _sr_quality(q).lower()

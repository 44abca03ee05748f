"""summary.json: the headline numbers, from the matrix and the SR/training inputs."""

from __future__ import annotations

import json

import pytest

from pipeline.evaluation.config import EvaluateConfig
from pipeline.evaluation.summary import build_summary, headline_methods, summarise
from pipeline.postprocess import PostprocessConfig

METHODS = {"nms": PostprocessConfig("nms"), "softnms": PostprocessConfig("soft_linear"),
           "gauss": PostprocessConfig("soft_gaussian")}


def matrix(sets=("hr", "sr", "bicubic", "lr")) -> dict[str, float | None]:
    m: dict[str, float | None] = {}
    for i, s in enumerate(sets):
        for j, meth in enumerate(METHODS):
            m |= {f"{s}.{meth}.map": 0.5 + 0.1 * i + 0.01 * j, f"{s}.{meth}.ap_small": 0.2 + 0.01 * j}
    m["lr.softnms.ap_small"] = None  # undefined (no small object): absent, never -1
    return m


def test_headline_is_first_hard_and_first_soft_method_per_summary_set():
    assert headline_methods(METHODS) == {"nms": "nms", "soft": "softnms"}
    assert headline_methods({"g": PostprocessConfig("soft_gaussian"), "n2": PostprocessConfig("nms")}) == {
        "soft": "g", "nms": "n2"}
    s = build_summary(matrix(), METHODS, ["hr", "sr", "lr"], ["hr", "sr", "lr"],
                      {"psnr_gain_db": 0.10549, "sr": {"psnr": 31.6}},
                      {"train": {"loss": 2.345678, "img_per_s": 143.4567}, "step": 9})
    assert s == {"hr": {"nms": 0.5, "soft": 0.51, "small": 0.21}, "sr": {"nms": 0.6, "soft": 0.61, "small": 0.21},
                 "lr": {"nms": 0.8, "soft": 0.81}, "psnr_gain": 0.105, "loss": 2.3457, "img_s": 143.5}
    assert "bicubic" not in s  # in the full matrix, not a headline set
    assert build_summary(matrix(), METHODS, ["hr"], ["hr"]) == {"hr": {"nms": 0.5, "soft": 0.51, "small": 0.21}}
    assert build_summary(matrix(), METHODS, ["lr"], ["sr"]) == {"lr": {"nms": 0.8, "soft": 0.81}, "sr": {"small": 0.21}}


def test_null_or_nan_inputs_are_absent(tmp_path):
    s = build_summary(matrix(), {"nms": METHODS["nms"]}, ["hr"], ["hr"], {"psnr_gain_db": None},
                      {"train": {"loss": float("nan"), "img_per_s": 3.0}})
    assert s == {"hr": {"nms": 0.5, "small": 0.2}, "img_s": 3.0}


def test_summarise_writes_summary_and_context(tmp_path):
    (tmp_path / "sr.json").write_text(json.dumps({"psnr_gain_db": 1.5}))
    (tmp_path / "train.json").write_text(json.dumps({"train": {"loss": 1.0, "img_per_s": 10.0}, "step": 3}))
    cfg = EvaluateConfig(methods={"nms": {"method": "nms"}, "softnms": {"method": "soft_linear"}},
                         summary_sets=["sr", "hr"])
    out = tmp_path / "eval"
    out.mkdir()
    fig = tmp_path / "fig.png"
    summary = summarise(out, matrix(), cfg, {"hr": "a", "sr": "b"}, "m.pt", "a",
                        str(tmp_path / "sr.json"), str(tmp_path / "train.json"), [str(fig)])
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["sr"] == {"nms": 0.6, "soft": 0.61, "small": 0.21} and summary["psnr_gain"] == 1.5
    ctx = json.loads((out / "context.json").read_text())
    assert ctx["sets"] == {"hr": "a", "sr": "b"} and ctx["headline_methods"] == {"nms": "nms", "soft": "softnms"}
    assert ctx["train"]["step"] == 3 and ctx["figures"] == ["../fig.png"]


def test_summary_width_fits_160_columns():
    """`dvc metrics show` lays out one column per key: max(len(key) + 2, len(value)) + 2, after the path."""
    cfg = EvaluateConfig()
    s = build_summary(matrix(), METHODS, cfg.summary_sets, cfg.summary_small_sets, {"psnr_gain_db": -0.1234},
                      {"train": {"loss": 12.3456, "img_per_s": 1234.5}})

    def flat(d, p=""):
        for k, v in d.items():
            yield from flat(v, f"{p}{k}.") if isinstance(v, dict) else [(p + k, v)]

    cols = [max(len(k) + 2, len(str(v))) + 2 for k, v in flat(s)]
    assert len(cols) == 11
    assert len("data/eval/summary.json") + 2 + sum(cols) - 2 <= 160


@pytest.mark.parametrize("sets", [["hr", "hr"]])
def test_summary_sets_listed_twice_is_a_config_error(sets):
    from pipeline.config import ConfigError, parse

    with pytest.raises(ConfigError, match=r"evaluate.summary_sets: lists a set twice"):
        parse(EvaluateConfig, {"summary_sets": sets}, "evaluate")

"""A real evaluation out dir for the summary/report/plots tests: the oracle detector on tiny HR/LR sets."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.evaluation.config import BootstrapConfig, EvaluateConfig
from pipeline.evaluation.matrix import evaluate_matrix
from pipeline.evaluation.summary import summarise
from tests.evaluation.test_matrix import OracleDetector, hr_records, lr_records

#: Two methods keep it fast; names as params.yaml spells them.
METHODS = {"nms": {"method": "nms"}, "softnms": {"method": "soft_linear"}}
SR_QUALITY = {"sr": {"psnr": 31.5975, "ssim": 0.71957}, "bicubic": {"psnr": 31.492, "ssim": 0.71833},
              "psnr_gain_db": 0.1055, "images": 3, "split": "test"}
TRAIN_METRICS = {"train": {"loss": 2.5, "cls": 1.5, "box": 1.0, "lr": 0.001, "img_per_s": 123.456}, "step": 40}


def make_eval_out(make_set: Callable[..., Path], root: Path, classes: Sequence[str],
                  pr_classes: str | list[str] = "auto") -> tuple[Path, dict, dict]:
    """Evaluate, summarise and return ``(out_dir, metrics, summary)``; inputs written under ``root``."""
    sets = {"hr": make_set(hr_records(), classes, "hr"), "lr": make_set(lr_records(), classes, "lr")}
    cfg = EvaluateConfig(methods=METHODS, summary_sets=["hr", "lr"],
                         summary_small_sets=["hr", "lr"], pictures=1, pr_classes=pr_classes)
    out = root / "eval"
    metrics = evaluate_matrix(OracleDetector(hr_records(), len(classes)), sets, sets["hr"], cfg.method_configs(),
                              out, pictures=1, pr_classes=pr_classes, picture_method="softnms", progress=False,
                              bootstrap=BootstrapConfig(resamples=200))
    (root / "sr_quality.json").write_text(json.dumps(SR_QUALITY))
    (root / "train.json").write_text(json.dumps(TRAIN_METRICS))
    summary = summarise(out, metrics, cfg, {k: str(v) for k, v in sets.items()}, "model.pt", str(sets["hr"]),
                        str(root / "sr_quality.json"), str(root / "train.json"),
                        [str(out / "figures" / "pr_hr_nms.png")])
    return out, metrics, summary

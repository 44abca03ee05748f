"""An interrupted run resumes exactly: k steps + resume + k steps == 2k steps (CPU)."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.detector.model import ModelConfig
from pipeline.detector.train import TrainConfig, train
from tests.detector.train_helpers import CLASSES, tiny_records

MODEL = ModelConfig(width=0.0625)


def _cfg(**kw) -> TrainConfig:
    # 5 train images, batch 2: 2 steps per epoch, so k=3 stops inside epoch 1 and the
    # resumed run crosses an epoch boundary (new permutation, new augmentation draws).
    base = dict(batch_size=2, steps=6, lr=0.01, warmup_steps=2, schedule="cosine", num_workers=0, log_every=1,
                checkpoint_every=3, augmentation="ssd", seed=3, grad_clip=5.0)
    base.update(kw)
    return TrainConfig(**base)


class _Crash(KeyboardInterrupt):
    pass


class _CrashAt:
    """A logger that kills the run when it reports ``step`` (after the step's update,
    before any checkpoint of that step): the last checkpoint is the one before."""

    def __init__(self, step: int) -> None:
        self.step = step

    def log(self, metrics: dict, step: int) -> None:
        if step == self.step:
            raise _Crash

    def close(self) -> None:
        pass


def test_resume_equals_uninterrupted(make_set, tmp_path: Path) -> None:
    set_dir = make_set(tiny_records(5), CLASSES)
    full = train(MODEL, _cfg(), set_dir, tmp_path / "full", device="cpu", progress=False)

    part = tmp_path / "part"
    try:
        train(MODEL, _cfg(), set_dir, part, device="cpu", progress=False, logger=_CrashAt(4))
    except _Crash:
        pass
    assert torch.load(part / "checkpoints" / "last.pt", weights_only=True)["step"] == 3
    resumed = train(MODEL, _cfg(), set_dir, part, device="cpu", progress=False)

    assert resumed.resumed_from == 3 and resumed.steps == 6
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history[3:]]
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k, st in a["optimizer"]["state"].items():
        assert torch.equal(st["momentum_buffer"], b["optimizer"]["state"][k]["momentum_buffer"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6

    # a checkpoint of another config is not resumed from
    other = train(MODEL, _cfg(lr=0.02), set_dir, part, device="cpu", progress=False)
    assert other.resumed_from == 0

"""An interrupted run resumes exactly: k steps + resume + k steps == 2k steps (CPU)."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.detector.data import DetectionDataset
from pipeline.detector.model import ModelConfig
from pipeline.detector.train import TrainConfig, fingerprint, train
from pipeline.detector.transforms import eval_transform
from tests.detector.train_helpers import CLASSES, tiny_records

MODEL = ModelConfig(width=0.0625)


def _cfg(**kw) -> TrainConfig:
    # 7 train images, batch 2: 3 steps per epoch, so k=2 stops inside epoch 0 and the
    # resumed run crosses an epoch boundary (new permutation, new augmentation draws).
    base = dict(batch_size=2, steps=4, lr=0.01, warmup_steps=2, schedule="cosine", num_workers=0, log_every=1,
                checkpoint_every=2, augmentation="ssd", seed=3, grad_clip=5.0)
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
    set_dir = make_set(tiny_records(7), CLASSES)
    full = train(MODEL, _cfg(), set_dir, tmp_path / "full", device="cpu", progress=False)

    part = tmp_path / "part"
    try:
        train(MODEL, _cfg(), set_dir, part, device="cpu", progress=False, logger=_CrashAt(3))
    except _Crash:
        pass
    assert torch.load(part / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
    resumed = train(MODEL, _cfg(), set_dir, part, device="cpu", progress=False)

    assert resumed.resumed_from == 2 and resumed.steps == 4
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history[2:]]
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k, st in a["optimizer"]["state"].items():
        assert torch.equal(st["momentum_buffer"], b["optimizer"]["state"][k]["momentum_buffer"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 4
    assert (b["epoch"], b["position"]) == (1, 1)
    steps = [ln.split("\t")[1] for ln in (part / "dvclive/plots/metrics/train/loss.tsv").read_text().splitlines()[1:]]
    assert steps == ["3", "4"]


def test_only_a_checkpoint_of_the_same_run_is_resumed(make_set, tmp_path: Path) -> None:
    """Runtime-only knobs may change between interruption and resume; anything else starts fresh."""
    ds = DetectionDataset(make_set(tiny_records(7), CLASSES), "train", eval_transform(300))
    other = DetectionDataset(make_set(tiny_records(7, seed=1), CLASSES, name="other"), "train", eval_transform(300))

    def fp(model=MODEL, dataset=ds, **kw):
        return fingerprint(model, _cfg(**kw), dataset, tmp_path / "out")

    base = fp()
    assert fp(num_workers=3, checkpoint_every=9, log_every=5) == base
    assert fp(lr=0.02) != base
    assert fp(seed=4) != base
    assert fp(model=ModelConfig(width=0.125)) != base
    assert fp(dataset=other) != base
    assert fingerprint(MODEL, _cfg(), ds, tmp_path / "out", world_size=2) != base

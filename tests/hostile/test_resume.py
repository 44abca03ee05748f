"""Hostile inputs to resume (issue 10, items 2 and 7): a checkpoint resumes only its own run.

Real sets of real JPEG/PNG files, real training steps on CPU (a 1/16-width SSD, 96 px
images): changed lr, a rewritten image, a different train set, changed code, an old
checkpoint without a fingerprint and a corrupt one never resume the old weights and say
why; an unchanged rerun resumes exactly; two trainings into one folder: the second gets
a clear error and the first one's loss log stays intact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import runstate
from pipeline.data.images import write_image
from pipeline.data.schema import images_dir
from pipeline.detector.model import ModelConfig
from pipeline.detector.train import TrainConfig, train
from pipeline.runstate import CheckpointError, RunBusyError
from pipeline.sr.config import SRConfig, SRModelConfig, SRTrainConfig
from pipeline.sr.train import CHECKPOINT_DIR, CHECKPOINT_FILE, train_sr
from pipeline.sr.weights import generator_state
from tests.conftest import build_set
from tests.detector.train_helpers import CLASSES, tiny_records
from tests.sr.conftest import degrade_set, rec

MODEL = ModelConfig(width=0.0625)
CKPT = Path("checkpoints") / "last.pt"


def _cfg(**kw) -> TrainConfig:
    base = dict(batch_size=2, steps=4, lr=0.01, warmup_steps=1, num_workers=0, log_every=1, checkpoint_every=2,
                augmentation="none", seed=3)
    return TrainConfig(**(base | kw))


class _Stop(KeyboardInterrupt):
    pass


class _FirstStep:
    """A metrics logger that records the first step it is given, then stops the run (at
    ``stop_at`` steps seen): the first step tells a fresh run (1) from a resumed one."""

    def __init__(self, stop_at: int = 1) -> None:
        self.steps: list[int] = []
        self.stop_at = stop_at

    def log(self, metrics: dict, step: int) -> None:
        self.steps.append(step)
        if len(self.steps) >= self.stop_at:
            raise _Stop

    def close(self) -> None:
        pass


def _run_until_stopped(set_dir: Path, out: Path, cfg: TrainConfig | None = None) -> list[int]:
    logger = _FirstStep()
    with pytest.raises(_Stop):
        train(MODEL, cfg or _cfg(), set_dir, out, device="cpu", progress=False, logger=logger)
    return logger.steps


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Set A, set B (other pixels and boxes; same file names, classes and count, as an LR or
    SR twin of A), a finished 4-step run on A and a run on A interrupted after the step-2
    checkpoint."""
    root = tmp_path_factory.mktemp("resume")
    set_a = build_set(root / "a", tiny_records(6), CLASSES)
    set_b = build_set(root / "b", tiny_records(6, seed=1), CLASSES, seed=1)
    train(MODEL, _cfg(), set_a, root / "full", device="cpu", progress=False)
    logger = _FirstStep(stop_at=3)
    with pytest.raises(_Stop):
        train(MODEL, _cfg(), set_a, root / "part", device="cpu", progress=False, logger=logger)
    assert torch.load(root / "part" / CKPT, weights_only=True)["step"] == 2
    return {"a": set_a, "b": set_b, "full": root / "full", "part": root / "part"}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_unchanged_rerun_resumes_exactly_even_from_a_moved_set(runs, tmp_path):
    out = _copy(runs["part"], tmp_path / "out")
    moved = _copy(runs["a"], tmp_path / "a_moved")  # same content elsewhere: the same data
    res = train(MODEL, _cfg(num_workers=1, log_every=2), moved, out, device="cpu", progress=False)
    assert (res.resumed_from, res.steps) == (2, 4)
    full, resumed = _weights(runs["full"] / CKPT), _weights(out / CKPT)
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_changed_lr_is_not_resumed(runs, tmp_path, caplog):
    out = _copy(runs["part"], tmp_path / "out")
    assert _run_until_stopped(runs["a"], out, _cfg(lr=0.02)) == [1]
    assert "not resumed: train.lr differs (0.01 -> 0.02); training from scratch" in caplog.text


def test_checkpoint_with_other_class_order_is_not_resumed(runs, tmp_path, caplog):
    """Same images and boxes, the class list in another order (issue 15 item 2): one log line
    names the first differing class and training starts fresh."""
    swapped = build_set(tmp_path / "swapped", tiny_records(6), CLASSES[::-1])
    out = _copy(runs["part"], tmp_path / "out")
    assert _run_until_stopped(swapped, out) == [1]
    assert "not resumed: data.classes[0] differs ('red' -> 'green'); training from scratch" in caplog.text


def test_rewritten_image_is_not_resumed(runs, tmp_path, caplog):
    set_dir = _copy(runs["a"], tmp_path / "a")
    out = _copy(runs["part"], tmp_path / "out")
    image = images_dir(set_dir) / "im3.jpg"
    write_image(image, np.full((96, 96, 3), 128, np.uint8))  # same name, size and table row
    assert _run_until_stopped(set_dir, out) == [1]
    assert "not resumed: training data changed" in caplog.text


def test_finished_run_on_another_set_is_retrained_not_returned(runs, tmp_path, caplog):
    """The issue's case: a folder holding a finished run on HR, training on the LR twin."""
    out = _copy(runs["full"], tmp_path / "out")
    old = _weights(out / CKPT)
    assert _run_until_stopped(runs["b"], out) == [1]
    assert "training data changed" in caplog.text
    assert not (out / "model.pt").exists()  # the other run's final model is gone, not left to be picked up
    assert all(torch.equal(old[k], v) for k, v in _weights(out / CKPT).items())  # not yet overwritten: step 1


def test_changed_code_is_not_resumed(runs, tmp_path, monkeypatch, caplog):
    out = _copy(runs["part"], tmp_path / "out")
    real = runstate.code_version()
    for name in ("same", "edited"):
        shutil.copytree(runstate.CODE_DIR, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runstate, "CODE_DIR", tmp_path / "same")
    assert runstate.code_version() == real  # the code version does not depend on where the code lives
    loss = tmp_path / "edited" / "detector" / "loss.py"
    loss.write_text(loss.read_text() + "\n# a change to the loss\n")
    monkeypatch.setattr(runstate, "CODE_DIR", tmp_path / "edited")
    assert _run_until_stopped(runs["a"], out) == [1]
    assert "not resumed: code changed" in caplog.text


def test_checkpoint_without_fingerprint_is_not_resumed(runs, tmp_path, caplog):
    out = _copy(runs["part"], tmp_path / "out")
    state = torch.load(out / CKPT, weights_only=True)
    del state["fingerprint"]
    torch.save(state, out / CKPT)
    assert _run_until_stopped(runs["a"], out) == [1]
    assert "records no fingerprint" in caplog.text


def test_corrupt_checkpoint_is_a_clear_error(runs, tmp_path):
    out = tmp_path / "out"
    (out / CKPT).parent.mkdir(parents=True)
    (out / CKPT).write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match=r"last\.pt: corrupt or unreadable training checkpoint .*delete it"):
        train(MODEL, _cfg(), runs["a"], out, device="cpu", progress=False)


def test_second_training_into_the_same_folder_is_refused(runs, tmp_path):
    out = tmp_path / "out"
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(row: dict, step: int, total: int) -> None:
        if step == 1:
            started.set()
            release.wait(60)

    def first() -> None:
        try:
            train(MODEL, _cfg(steps=2), runs["a"], out, device="cpu", progress=False, on_log=hold)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert started.wait(60)
        with pytest.raises(RunBusyError, match=r"another training is writing to this folder \(pid \d+"):
            train(MODEL, _cfg(steps=2), runs["b"], out, device="cpu", progress=False)
    finally:
        release.set()
        thread.join(60)
    assert not errors
    rows = (out / "dvclive/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert [r.split("\t")[1] for r in rows[1:]] == ["1", "2"]


@pytest.mark.slow
def test_busy_folder_is_one_line_from_the_cli(runs, tmp_path):
    """Another process holds the folder: ``python -m pipeline.detector.train`` says so in
    one line, exit 2, and writes nothing there."""
    out = tmp_path / "out"
    with runstate.exclusive_output(out):
        proc = subprocess.run([sys.executable, "-m", "pipeline.detector.train", "--train-set", str(runs["a"]),
                               "--out", str(out), "--device", "cpu"], cwd=Path(__file__).resolve().parents[2],
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {out}: another training is writing to this folder (pid {os.getpid()}")
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [runstate.LOCK_FILE]


# ---------------------------------------------------------------- SR


def _sr_cfg(**train) -> SRConfig:
    base = dict(pretrain_iters=6, patch_size=8, batch_size=2, checkpoint_every=3, log_every=1, lr_milestones=[0.5])
    return SRConfig(model=SRModelConfig(num_feat=8, num_block=1), train=SRTrainConfig(**(base | train)))


class _Interrupt(Exception):
    pass


@pytest.fixture
def sr_interrupted(tmp_path) -> tuple[Path, Path, Path]:
    """HR/LR sets and an SR run interrupted after its step-3 checkpoint."""
    hr = build_set(tmp_path / "hr", [rec("a", "train", 64, 48, [[4, 4, 20, 20]], [0]),
                                     rec("b", "train", 48, 64, [[10, 10, 30, 40]], [1])], ["x", "y"])
    lr = degrade_set(hr, tmp_path / "lr")

    def crash(step: int, _: dict) -> None:
        if step == 4:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_sr(hr, lr, tmp_path / "sr", _sr_cfg(), seed=0, device="cpu", callback=crash)
    assert torch.load(tmp_path / "sr" / CHECKPOINT_DIR / CHECKPOINT_FILE, weights_only=True)["step"] == 3
    return hr, lr, tmp_path / "sr"


def test_sr_lr_change_is_not_resumed(sr_interrupted, tmp_path, caplog):
    hr, lr, out = sr_interrupted
    seen: list[int] = []
    res = train_sr(hr, lr, out, _sr_cfg(lr_g=1e-3), seed=0, device="cpu", callback=lambda s, _: seen.append(s))
    assert seen == [1, 2, 3, 4, 5, 6] and res.steps == 6
    assert "not resumed: sr.train.lr_g differs (0.002 -> 0.001)" in caplog.text
    fresh = train_sr(hr, lr, tmp_path / "fresh", _sr_cfg(lr_g=1e-3), seed=0, device="cpu")
    a, b = generator_state(res.generator), generator_state(fresh.generator)
    assert all(torch.equal(a[k], b[k]) for k in a)  # exactly a fresh run: no old weights


def test_sr_changed_lr_image_is_not_resumed(sr_interrupted, caplog):
    hr, lr, out = sr_interrupted
    write_image(images_dir(lr) / "a.png", np.zeros((12, 16, 3), np.uint8))
    seen: list[int] = []
    train_sr(hr, lr, out, _sr_cfg(), seed=0, device="cpu", callback=lambda s, _: seen.append(s))
    assert seen[0] == 1 and "not resumed: training data changed" in caplog.text


def test_sr_unchanged_rerun_resumes(sr_interrupted, caplog):
    hr, lr, out = sr_interrupted
    seen: list[int] = []
    cfg = _sr_cfg()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, log_every=2, max_cached_images=1))
    train_sr(hr, lr, out, cfg, seed=0, device="cpu", callback=lambda s, _: seen.append(s))
    assert seen == [4, 5, 6] and "not resumed" not in caplog.text


# ---------------------------------------------------------------- under DVC


@pytest.mark.slow
def test_dvc_repro_killed_during_train_resumes_from_its_checkpoint(tmp_path, prefect_server):
    """A real ``dvc repro`` killed (SIGKILL, the whole process group) once the first
    checkpoint exists: the next ``dvc repro`` keeps the checkpoint (``persist: true``) and
    the training continues from it to the end."""
    from tests.e2e.conftest import copy_project

    steps = 6
    proj = copy_project(tmp_path / "proj", {"model": {"width": 0.0625},
                                            "train": {"steps": steps, "checkpoint_every": 2, "log_every": 2}},
                        api_url=prefect_server)
    proj.dvc("repro", "ingest")
    ckpt = proj.root / "data/models/detector" / CKPT
    log = tmp_path / "killed_repro.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train"], cwd=proj.root, env=proj.env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ckpt.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # dvc, the stage and anything it started
        proc.wait(30)
    assert ckpt.is_file(), f"no checkpoint appeared:\n{log.read_text()[-3000:]}"
    killed_at = int(torch.load(ckpt, weights_only=True)["step"])
    assert 0 < killed_at < steps

    proj.dvc("repro", "train")
    summary = json.loads((proj.root / "data/models/detector/train_summary.json").read_text())
    assert summary["resumed_from"] >= killed_at and summary["steps"] == steps
    assert torch.load(ckpt, weights_only=True)["step"] == steps
    assert "up to date" in proj.dvc("status", "train").stdout  # the resumed run was committed

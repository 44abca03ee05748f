"""Training ends without tracebacks: DataLoader workers (2, persistent) stop with the run —
at max steps mid-epoch, on an error — and exit cleanly even when the training process
carries thread-exit hooks that fail in a forked child (Prefect 3's services do; issue 15
item 7).  The flow-driven run is checked end to end through ``stages/train.py``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import build_set
from tests.detector.train_helpers import CLASSES, tiny_records
from tests.flows.conftest import prefect_env

REPO = Path(__file__).resolve().parents[2]
# 8 images, batch 2: 4 steps per epoch; 3 steps stop mid-epoch with workers still prefetching
TRAIN = {"batch_size": 2, "steps": 3, "warmup_steps": 1, "num_workers": 2, "log_every": 1,
         "checkpoint_every": 1000, "augmentation": "none", "amp": "none", "seed": 0}
MODEL = {"width": 0.0625, "batch_norm": True}
NOISE = ("Exception ignored", "Traceback", "exited unexpectedly")


@pytest.fixture
def train_set(tmp_path: Path) -> Path:
    return build_set(tmp_path / "set", tiny_records(8), CLASSES)


def _run(code: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_workers_stop_with_the_run_and_exit_cleanly_despite_inherited_exit_hooks(tmp_path, train_set):
    code = textwrap.dedent(f"""
        import multiprocessing, os, sys, threading
        sys.path.insert(0, {str(REPO)!r})
        import torch
        torch.set_num_threads(1)
        from pipeline.detector.model import ModelConfig
        from pipeline.detector.train import TrainConfig, train

        parent = os.getpid()
        def service_hook():  # as Prefect's services: its state is reset in a forked child
            assert os.getpid() == parent, "service state is gone in a forked child"
        threading._register_atexit(service_hook)

        model, cfg = ModelConfig(**{MODEL!r}), TrainConfig(**{TRAIN!r})
        r = train(model, cfg, {str(train_set)!r}, {str(tmp_path / "out")!r}, device="cpu", progress=False)
        print("steps", r.steps, "children after max steps:", len(multiprocessing.active_children()))

        def fail(row, step, total):
            raise RuntimeError("stop at step " + str(step))
        try:
            train(model, cfg, {str(train_set)!r}, {str(tmp_path / "out2")!r}, device="cpu", progress=False,
                  on_log=fail)
        except RuntimeError as exc:
            print(exc, "children after error:", len(multiprocessing.active_children()))
    """)
    proc = _run(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "steps 3 children after max steps: 0" in proc.stdout
    assert "stop at step 1 children after error: 0" in proc.stdout
    assert not [n for n in NOISE if n in proc.stderr], proc.stderr[-3000:]


@pytest.mark.slow
def test_flow_driven_training_ends_without_traceback(tmp_path, train_set, prefect_server):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"model": MODEL, "train": TRAIN}))
    proc = subprocess.run(
        [sys.executable, str(REPO / "stages" / "train.py"), "--train-set", str(train_set),
         "--out", str(tmp_path / "out"), "--params", str(params), "--device", "cpu"],
        cwd=tmp_path, env=prefect_env(tmp_path / "home", prefect_server), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "train_summary.json").is_file()
    assert not [n for n in NOISE if n in proc.stderr], proc.stderr[-3000:]

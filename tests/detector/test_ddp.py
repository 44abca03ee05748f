"""DDP: two CPU processes on gloo (as torchrun would set them up) end with identical weights."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from pipeline.detector.model import ModelConfig
from pipeline.detector.train import TrainConfig, train
from tests.detector.train_helpers import CLASSES, tiny_records

MODEL = ModelConfig(width=0.0625)
CFG = TrainConfig(batch_size=4, steps=4, lr=0.01, warmup_steps=1, num_workers=0, log_every=1,
                  checkpoint_every=1000, augmentation="ssd", seed=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, set_dir: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from pipeline.detector import distributed

    try:
        result = train(MODEL, CFG, set_dir, out, device="cpu", progress=False)
        torch.save({"history": result.history, "model": result.model.state_dict()}, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.cleanup()


def test_two_gloo_ranks_train_in_lockstep(make_set, tmp_path: Path) -> None:
    set_dir = make_set(tiny_records(8), CLASSES)
    out = tmp_path / "ddp"
    mp.spawn(_worker, args=(2, _free_port(), str(set_dir), str(out)), nprocs=2, join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for k, v in r0["model"].items():
        assert torch.equal(v, r1["model"][k]), k
    h0, h1 = r0["history"], r1["history"]
    # logged losses are all-reduced means: identical on both ranks
    assert [h["loss"] for h in h0] == [h["loss"] for h in h1] and len(h0) == 4
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in h0)
    assert h0[-1]["loss"] < h0[0]["loss"]
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and all(torch.equal(v, ckpt["model"][k]) for k, v in r0["model"].items())

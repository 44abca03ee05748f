"""Detector training loop: SGD + warm-up + step/cosine schedule, bf16/channels_last/compile
on CUDA, DDP under torchrun, exact resume from atomic checkpoints.

Core library: imports neither Prefect nor DVC.  Run alone on a GPU box with::

    python -m pipeline.detector.train --params params.yaml --train-set data/sets/hr --out data/models/ssd
    torchrun --nproc_per_node=4 -m pipeline.detector.train --params params.yaml ... --device cuda

Outputs under ``<out>``: ``model.pt`` (pipeline.detector.checkpoint format, class names
in its extra), ``checkpoints/last.pt`` (full training state) and the metrics in
dvclive's layout under ``<out>/dvclive`` (see :mod:`pipeline.detector.metrics_log`).

Exact resume: a checkpoint holds model, optimizer, scheduler, grad scaler, the step
(hence epoch and position inside the epoch), every RNG state and the sampler seed;
augmentation is seeded per (seed, epoch, index) (:mod:`pipeline.detector.data`), so
k steps + resume + k steps equal 2k uninterrupted steps.  A checkpoint resumes only
when its fingerprint (params, training-data content, code; :mod:`pipeline.runstate`)
matches the run; otherwise the run starts fresh and logs why.  A lock file
``<out>/.train.lock`` keeps a second training out of the same folder.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from pipeline import runstate
from pipeline.atomic import write_json
from pipeline.config import load_params, require, section
from pipeline.data.schema import images_dir
from pipeline.detector import distributed as ddp_utils
from pipeline.detector.checkpoint import save_detector
from pipeline.detector.data import (
    DetectionDataset,
    ResumableSampler,
    auto_num_workers,
    make_loader,
    to_device,
)
from pipeline.detector.metrics_log import MetricsLogger, NullLogger, TsvLogger
from pipeline.detector.model import ModelConfig, build_detector
from pipeline.detector.transforms import RECIPES, build_transform
from pipeline.hashing import HashState
from pipeline.runstate import (
    HASH_STATE_FILE,
    data_hash,
    rng_state,
    save_state,
    seed_everything,
    set_rng_state,
)

log = logging.getLogger(__name__)

CHECKPOINT = Path("checkpoints") / "last.pt"
MODEL_FILE = "model.pt"
METRICS_DIR = "dvclive"


@dataclass(frozen=True)
class TrainConfig:
    """Params section ``train``; defaults are the embedded-default run (2 CPU cores, ~3 min).

    ``batch_size`` is global: DDP splits it over the ranks (it must divide evenly), so
    the learning rate means the same for any number of processes.  Exactly one of
    ``steps``/``epochs`` is set.  ``amp``, ``channels_last`` and ``compile`` apply on
    CUDA only and are ignored on CPU (unless ``train(cuda_options_on_cpu=True)``).  ``num_workers``: DataLoader worker processes,
    ``null`` = auto (cores per local rank - 1), 0 = load in the training process.
    """

    train_set: str = "hr"
    split: str = "train"
    augmentation: str = "ssd"
    include_difficult: bool = False
    batch_size: int = 8
    steps: int | None = 100
    epochs: int | None = None
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 20
    warmup_start: float = 0.01
    schedule: Literal["step", "cosine"] = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    grad_clip: float | None = 10.0
    amp: Literal["bf16", "fp16", "none"] = "bf16"
    channels_last: bool = True
    compile: bool = False
    num_workers: int | None = None
    checkpoint_every: int = 50
    log_every: int = 5
    seed: int = 0

    def validate(self, prefix: str = "train") -> None:
        require(self.augmentation in RECIPES, f"{prefix}.augmentation", f"{self.augmentation!r} is not one of {list(RECIPES)}")
        require(self.batch_size >= 1, f"{prefix}.batch_size", "must be >= 1")
        require((self.steps is None) != (self.epochs is None), f"{prefix}.steps",
                "set exactly one of train.steps / train.epochs (the other to null)")
        require(self.steps is None or self.steps >= 1, f"{prefix}.steps", "must be >= 1")
        require(self.epochs is None or self.epochs >= 1, f"{prefix}.epochs", "must be >= 1")
        require(self.lr > 0, f"{prefix}.lr", "must be > 0")
        require(0 <= self.momentum < 1, f"{prefix}.momentum", "must be in [0, 1)")
        require(self.weight_decay >= 0, f"{prefix}.weight_decay", "must be >= 0")
        require(self.warmup_steps >= 0, f"{prefix}.warmup_steps", "must be >= 0")
        require(0 < self.warmup_start <= 1, f"{prefix}.warmup_start", "must be in (0, 1]")
        require(list(self.milestones) == sorted(set(self.milestones)) and all(m > 0 for m in self.milestones),
                f"{prefix}.milestones", "must be increasing positive steps")
        require(0 < self.gamma <= 1, f"{prefix}.gamma", "must be in (0, 1]")
        require(self.grad_clip is None or self.grad_clip > 0, f"{prefix}.grad_clip", "must be > 0 or null")
        require(self.num_workers is None or self.num_workers >= 0, f"{prefix}.num_workers", "must be >= 0 or null")
        require(self.checkpoint_every >= 1, f"{prefix}.checkpoint_every", "must be >= 1")
        require(self.log_every >= 1, f"{prefix}.log_every", "must be >= 1")


@dataclass
class TrainResult:
    model_path: Path
    checkpoint_path: Path
    steps: int
    resumed_from: int
    final_loss: float
    images_per_s: float
    history: list[dict[str, float]] = field(default_factory=list)
    model: nn.Module | None = field(default=None, repr=False)  # the trained (unwrapped) model, in memory


@dataclass(frozen=True)
class LrSchedule:
    """LR factor at a step: linear warm-up from ``warmup_start`` times a step decay
    (``gamma`` at each milestone) or a cosine decay to 0 over ``total`` steps."""

    total: int
    warmup_steps: int
    warmup_start: float
    schedule: str
    milestones: tuple[int, ...]
    gamma: float

    def __call__(self, step: int) -> float:
        warm = 1.0
        if step < self.warmup_steps:
            warm = self.warmup_start + (1.0 - self.warmup_start) * step / self.warmup_steps
        if self.schedule == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, self.total) / self.total))
        return warm * self.gamma ** sum(step >= m for m in self.milestones)


# ---------------------------------------------------------------- run state


def fingerprint(model_cfg: ModelConfig, cfg: TrainConfig, dataset: DetectionDataset, out: Path,
                world_size: int = 1, device: str = "cpu", cuda_options: bool = False) -> dict[str, Any]:
    """What must match for a checkpoint to resume this run (see :mod:`pipeline.runstate`):
    model and train params, the process layout and device type, the classes, annotations
    and image bytes of the split used, the backbone weights file and the code version."""
    records = dataset.records
    state = HashState(out / CHECKPOINT.parent / HASH_STATE_FILE)
    data = data_hash(records, [images_dir(dataset.set_dir) / r.file_name for r in records], state)
    params = {"model": asdict(model_cfg), "train": asdict(cfg), "data": {"classes": list(dataset.classes)},
              "run": {"world_size": world_size, "device": device, "cuda_options": cuda_options}}
    return runstate.fingerprint(params, data, {"model.backbone_weights": model_cfg.backbone_weights})


def _resume(path: Path, fp: dict[str, Any], parts: dict[str, Any]) -> dict[str, Any] | None:
    """Load a matching checkpoint at ``path`` into ``parts`` (name -> object with
    ``load_state_dict``) and restore the RNGs; returns it, or None to start fresh."""
    state = runstate.resumable(path, fp)
    if state is None:
        return None
    for name, part in parts.items():
        part.load_state_dict(state[name])
    set_rng_state(state["rng"])
    log.info("resuming %s at step %d (epoch %d, batch %d)", path, state["step"], state["epoch"], state["position"])
    return state


# ---------------------------------------------------------------- the loop


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DDP


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    train_set_dir: str | Path,
    out_dir: str | Path,
    logger: MetricsLogger | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool = True,
    on_log: Callable[[dict[str, float], int, int], None] | None = None,
    cuda_options_on_cpu: bool = False,
) -> TrainResult:
    """Train ``build_detector(model_cfg)`` on split ``train_cfg.split`` of ``train_set_dir``.

    Args:
        logger: metrics sink (rank 0 only; left open for the caller to close); default
            :class:`TsvLogger` under ``<out>/dvclive``.
        device: "cpu" | "cuda" | None (CUDA when available); under torchrun each rank
            takes ``cuda:<LOCAL_RANK>``.
        resume: continue from ``<out>/checkpoints/last.pt`` when its fingerprint matches
            this run (params, data content, code; :func:`fingerprint`), else start fresh
            and log why in one line.
        on_log: also called with every logged row, step and total steps on rank 0 (e.g. to echo
            progress into a Prefect run log), in addition to ``logger``.
        cuda_options_on_cpu: apply ``amp``, ``channels_last`` and ``compile`` on the CPU
            too, so the GPU code paths run (and are tested) without a GPU; slow on CPU.

    Raises:
        RunBusyError: another training holds ``out_dir`` (``<out>/.train.lock``).
    """
    with runstate.exclusive_output(out_dir) if ddp_utils.env_info().is_main else contextlib.nullcontext():
        return _train(model_cfg, train_cfg, train_set_dir, out_dir, logger, device, resume, progress, on_log,
                      cuda_options_on_cpu)


def _train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    train_set_dir: str | Path,
    out_dir: str | Path,
    logger: MetricsLogger | None,
    device: str | torch.device | None,
    resume: bool,
    progress: bool,
    on_log: Callable[[dict[str, float], int, int], None] | None,
    cuda_options_on_cpu: bool,
) -> TrainResult:
    cfg = train_cfg
    out = Path(out_dir)
    device = ddp_utils.local_device(device)
    dist = ddp_utils.setup(device)
    cuda = device.type == "cuda"
    accel = cuda or cuda_options_on_cpu  # where amp / channels_last / compile apply
    if cfg.batch_size % dist.world_size:
        raise ValueError(f"train.batch_size={cfg.batch_size} is not divisible by the {dist.world_size} DDP processes")
    per_rank = cfg.batch_size // dist.world_size
    use_amp = accel and cfg.amp != "none"
    amp_dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    channels_last = accel and cfg.channels_last

    seed_everything(cfg.seed)
    transform = build_transform(cfg.augmentation, model_cfg.input_size)
    dataset = DetectionDataset(train_set_dir, cfg.split, transform, seed=cfg.seed,
                               include_difficult=cfg.include_difficult)
    sampler = ResumableSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, seed=cfg.seed)
    steps_per_epoch = sampler.num_samples // per_rank
    if steps_per_epoch == 0:
        raise ValueError(f"{train_set_dir}: {len(dataset)} {cfg.split!r} images are fewer than one batch "
                         f"({per_rank} per process)")
    total = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
    workers = auto_num_workers(dist.world_size) if cfg.num_workers is None else cfg.num_workers
    loader = make_loader(dataset, sampler, per_rank, workers, pin_memory=cuda, seed=cfg.seed)

    model = build_detector(model_cfg, num_classes=len(dataset.classes)).to(device)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_bn and per_rank < 2:
        raise ValueError(f"train.batch_size={cfg.batch_size} leaves {per_rank} image per process; BatchNorm "
                         "(model.batch_norm, fem) needs at least 2 (its 1x1 conv11_2 map has one value per image)")
    if has_bn and dist.enabled and cuda:
        # batch statistics over the global batch, as on one device (Ioffe & Szegedy; ScratchDet)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, LrSchedule(total, cfg.warmup_steps, cfg.warmup_start, cfg.schedule, tuple(cfg.milestones), cfg.gamma)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and cfg.amp == "fp16")

    ckpt_path = out / CHECKPOINT
    model_path = out / MODEL_FILE
    fp = fingerprint(model_cfg, cfg, dataset, out, dist.world_size, device.type, accel)
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    state = _resume(ckpt_path, fp, parts) if resume else None
    step = int(state["step"]) if state else 0
    if state is None and dist.is_main:
        model_path.unlink(missing_ok=True)  # never leave another run's final model beside this one
    resumed_from = step

    net: nn.Module = model
    if dist.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if cfg.compile and accel:
        net = torch.compile(net)
    own_logger = logger is None or not dist.is_main
    if not dist.is_main:
        logger = NullLogger()
    elif logger is None:
        logger = TsvLogger(out / METRICS_DIR, prefix="train", resume_step=step if step else None)

    def checkpoint() -> None:
        if not dist.is_main:
            return
        epoch, position = divmod(step, steps_per_epoch)
        save_state(ckpt_path, {
            **{name: part.state_dict() for name, part in parts.items()},
            "step": step, "epoch": epoch, "position": position, "sampler_seed": sampler.seed,
            "rng": rng_state(), "fingerprint": fp,
        })

    history: list[dict[str, float]] = []
    window = torch.zeros(3, device=device)  # running sums of loss, cls, box since the last log
    window_steps, window_t0 = 0, time.perf_counter()
    t_start, images_seen = time.perf_counter(), 0
    bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not (progress and dist.is_main),
               dynamic_ncols=True)
    try:
        model.train()
        while step < total:
            epoch, position = divmod(step, steps_per_epoch)
            sampler.set_epoch(epoch, start=position * per_rank)
            for batch in loader:
                images, gt_boxes, gt_labels = to_device(batch, device, channels_last)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    cls_logits, box_deltas = net(images)
                losses = _unwrap(net).loss(cls_logits.float(), box_deltas.float(), gt_boxes, gt_labels)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(losses["loss"]).backward()
                if cfg.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                lr = optimizer.param_groups[0]["lr"]
                with warnings.catch_warnings():
                    # fp16: GradScaler skips the first steps while it finds its scale; the schedule
                    # still follows the step count (what a resume restores), so torch's
                    # "scheduler before optimizer" warning does not apply.
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
                    scheduler.step()
                step += 1
                images_seen += cfg.batch_size
                window += torch.stack([losses["loss"].detach(), losses["cls"].detach(), losses["box"].detach()])
                window_steps += 1
                bar.update(1)
                if step % cfg.log_every == 0 or step == total:
                    mean = ddp_utils.all_reduce_mean(window / window_steps).tolist()  # the one host sync
                    dt = time.perf_counter() - window_t0
                    row = {"loss": mean[0], "cls": mean[1], "box": mean[2], "lr": lr,
                           "img_per_s": window_steps * cfg.batch_size / max(dt, 1e-9)}
                    if not all(math.isfinite(v) for v in mean):
                        raise FloatingPointError(f"non-finite loss {row} at step {step}; lower train.lr or set train.grad_clip")
                    logger.log(row, step)
                    if on_log is not None and dist.is_main:
                        on_log(row, step, total)
                    history.append({"step": step, **row})
                    bar.set_postfix(loss=f"{mean[0]:.3f}", lr=f"{lr:.2e}")
                    window.zero_()
                    window_steps, window_t0 = 0, time.perf_counter()
                if step % cfg.checkpoint_every == 0 and step < total:
                    checkpoint()
                if step >= total:
                    break
    finally:
        bar.close()
        del loader  # its persistent workers stop here (end, max steps mid-epoch, error), not at interpreter exit
        if own_logger:
            logger.close()  # a caller's logger stays open: the caller owns it
    elapsed = time.perf_counter() - t_start

    if dist.is_main:
        checkpoint()
        save_detector(model_path, model, extra={"classes": list(dataset.classes), "train": asdict(cfg),
                                                "steps": step, "train_set": str(train_set_dir)})
    ddp_utils.barrier()
    return TrainResult(
        model_path=model_path, checkpoint_path=ckpt_path, steps=step, resumed_from=resumed_from,
        final_loss=history[-1]["loss"] if history else float("nan"),
        images_per_s=images_seen / max(elapsed, 1e-9), history=history, model=model,
    )


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.detector.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--params", default="params.yaml", help="params file (sections `model`, `train`)")
    p.add_argument("--train-set", required=True, help="set directory (images/ + annotations.parquet)")
    p.add_argument("--out", required=True, help="output directory (model.pt, checkpoints/, dvclive/)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--summary", default=None, help="optional JSON summary path (steps, final loss, img/s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    model_cfg = section(params, "model", ModelConfig)
    train_cfg = section(params, "train", TrainConfig)
    try:
        result = train(model_cfg, train_cfg, args.train_set, args.out, device=args.device, resume=not args.no_resume)
    finally:
        ddp_utils.cleanup()
    if args.summary and ddp_utils.env_info().is_main:
        summary = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name not in ("history", "model")}
        write_json(args.summary, {k: str(v) if isinstance(v, Path) else v for k, v in summary.items()})
    return 0


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)

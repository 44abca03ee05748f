"""SRResNet / SRGAN training loop (plain PyTorch on basicsr's networks and losses).

Phase 1 (``pretrain_iters``): SRResNet with a pixel loss (L1 or MSE), as SRGAN's
initialisation (Ledig et al. 2017, sec. 3.4).  Phase 2 (``gan_iters``): SRGAN, generator
loss = ``perceptual_weight`` * content loss + ``adversarial_weight`` (1e-3 in the paper)
* GAN loss (+ ``pixel_weight`` * pixel loss, as basicsr's SRGAN recipe); the discriminator
is updated once per step on real HR and detached SR patches.  The content loss is a
:class:`pipeline.sr.perceptual.ContentLoss` given by the caller (the DVC stages: the
pixel phase in ``sr_train``, phase 2 in ``srgan_train`` with a detector's features,
:func:`train_srgan`), else VGG19 ``conv5_4`` when ImageNet VGG19 weights are set (or
``force_perceptual``); without either phase 2 is skipped with a warning.

Resumable: every ``checkpoint_every`` steps ``<out>/checkpoints/last.pth`` is written
atomically with networks, optimisers, schedulers, grad scaler, step, RNG states and the
patch sampler state; a rerun continues from it exactly (same weights as an
uninterrupted run on the same device) and the loss log stays continuous — but only when
the checkpoint's fingerprint (params, training-data content, code;
:mod:`pipeline.runstate`) matches the rerun; otherwise it trains from scratch and logs why.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from pipeline.atomic import write_text
from pipeline.hashing import HashState
from pipeline.runstate import (
    HASH_STATE_FILE,
    CheckpointError,
    data_hash,
    exclusive_output,
    fingerprint,
    resumable,
    rng_state,
    save_state,
    set_rng_state,
)
from pipeline.sr.basicsr_compat import import_basicsr
from pipeline.sr.config import SRConfig, gan_phase
from pipeline.sr.models import build_discriminator, build_generator
from pipeline.sr.pairs import Pair, PatchSampler, match_sets
from pipeline.sr.perceptual import ContentLoss, VGGContentLoss, build_content_loss
from pipeline.sr.weights import load_generator_into

log = logging.getLogger(__name__)

GENERATOR_FILE = "generator.pth"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILE = "last.pth"
LOG_FILE = "loss_log.csv"
LOG_COLUMNS = ("step", "phase", "lr_g", "pixel", "perceptual", "adversarial", "d_loss", "g_total")


__all__ = ["CheckpointError", "TrainResult", "run_fingerprint", "train_sr", "train_srgan", "use_gan_phase"]


@dataclass(frozen=True)
class TrainResult:
    generator: Path
    log: Path
    steps: int
    gan: bool


def use_gan_phase(gan_iters: int, vgg19_weights: str | None, force_perceptual: bool, content: bool = False) -> bool:
    """Whether phase 2 runs (``content``: a content loss is given); warns when it is skipped
    for lack of a content loss."""
    if gan_iters == 0:
        return False
    if vgg19_weights is None and not force_perceptual and not content:
        log.warning(
            "WARNING: sr.train.gan_iters=%d but no ImageNet VGG19 weights (sr.train.vgg19_weights): "
            "skipping the SRGAN perceptual/adversarial phase; training pixel-loss SRResNet only. "
            "Set sr.train.vgg19_weights to a torchvision vgg19-dcbb9e9d.pth path (or 'torchvision'), "
            "run the stage srgan_train (a detector's features), "
            "or force_perceptual: true to use random VGG features.", gan_iters)
        return False
    return True


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def run_fingerprint(cfg: SRConfig, seed: int, pairs: list[Pair], gan: bool, device: torch.device,
                    state: HashState | None = None, content: ContentLoss | None = None) -> dict[str, Any]:
    """What must match for a checkpoint to resume this run (see :mod:`pipeline.runstate`):
    the ``sr.model``/``sr.train`` params (and ``sr.perceptual`` with a detector content
    loss), ``seed``, whether the GAN phase runs and on which content loss, the device type,
    the HR and LR annotations and image bytes of the training pairs, the weights files the
    run starts from (generator, VGG19, the feature detector) and the code version."""
    records = [r for p in pairs for r in (p.hr, p.lr)]
    files = [f for p in pairs for f in (p.hr_path, p.lr_path)]
    t = cfg.train
    sr = {"model": dataclasses.asdict(cfg.model), "train": dataclasses.asdict(t)}
    run = {"gan": gan, "device": device.type}
    weights = {"sr.train.pretrained_generator": t.pretrained_generator, "sr.train.vgg19_weights": t.vgg19_weights}
    if gan and content is not None:
        run["content"] = content.name
        weights["content network"] = content.source
        if content.name.startswith("detector:"):
            sr["perceptual"] = dataclasses.asdict(cfg.perceptual)
    params = {"sr": sr, "seed": seed, "run": run}
    return fingerprint(params, data_hash(records, files, state), weights)


class _Phase:
    """Optimisers and schedulers of one phase (a new phase starts with fresh ones, as a new run)."""

    def __init__(self, name: str, g: nn.Module, d: nn.Module | None, cfg: SRConfig, length: int) -> None:
        t = cfg.train
        milestones = sorted({max(1, int(f * length)) for f in t.lr_milestones})
        self.name = name
        # Adam betas as basicsr's SRResNet/SRGAN recipes.
        self.opt_g = torch.optim.Adam(g.parameters(), lr=t.lr_g, betas=(0.9, 0.99))
        self.sched_g = torch.optim.lr_scheduler.MultiStepLR(self.opt_g, milestones, gamma=t.lr_gamma)
        self.opt_d = self.sched_d = None
        if d is not None:
            self.opt_d = torch.optim.Adam(d.parameters(), lr=t.lr_d, betas=(0.9, 0.99))
            self.sched_d = torch.optim.lr_scheduler.MultiStepLR(self.opt_d, milestones, gamma=t.lr_gamma)

    def state_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "opt_g": self.opt_g.state_dict(), "sched_g": self.sched_g.state_dict()}
        if self.opt_d is not None:
            out |= {"opt_d": self.opt_d.state_dict(), "sched_d": self.sched_d.state_dict()}
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt_g.load_state_dict(state["opt_g"])
        self.sched_g.load_state_dict(state["sched_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
            self.sched_d.load_state_dict(state["sched_d"])


def train_sr(
    hr_dir: str | os.PathLike[str],
    lr_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cfg: SRConfig,
    seed: int = 0,
    device: str | torch.device | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    content: ContentLoss | None = None,
) -> TrainResult:
    """Train on the TRAINING split of (HR, LR); write ``<out>/generator.pth``.

    Args:
        callback: called as ``callback(step, losses)`` after every step (and after that
            step's checkpoint); an exception there interrupts training like a crash.
        content: the GAN phase's content loss (frozen); None = VGG19 from
            ``sr.train.vgg19_weights`` (or random with ``force_perceptual``), else no GAN phase.

    Resumes from ``<out>/checkpoints/last.pth`` only when its fingerprint
    (:func:`run_fingerprint`) matches this run; otherwise trains from scratch and logs why.

    Returns:
        Paths of the generator (basicsr-style ``{'params': state_dict}``) and loss log.

    Raises:
        RunBusyError: another training holds ``out_dir`` (``<out>/.train.lock``).
    """
    with exclusive_output(out_dir):
        return _train_sr(Path(hr_dir), Path(lr_dir), Path(out_dir), cfg, seed, device, callback, content)


def train_srgan(
    hr_dir: str | os.PathLike[str],
    lr_dir: str | os.PathLike[str],
    generator: str | os.PathLike[str],
    detector: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    cfg: SRConfig,
    seed: int = 0,
    device: str | torch.device | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """The SRGAN phase alone (stage ``srgan_train``): ``sr.train.gan_iters`` steps from the
    pixel-phase ``generator`` (:func:`pipeline.sr.config.gan_phase`), content loss VGG19
    when ``sr.train.vgg19_weights`` is set, else the ``detector`` checkpoint's trunk
    features (:func:`pipeline.sr.perceptual.build_content_loss`); resumable as :func:`train_sr`."""
    content = build_content_loss(cfg.train, cfg.perceptual, detector)
    return train_sr(hr_dir, lr_dir, out_dir, gan_phase(cfg, str(generator)), seed, device, callback, content)


def _train_sr(hr_dir: Path, lr_dir: Path, out_dir: Path, cfg: SRConfig, seed: int, device: str | torch.device | None,
              callback: Callable[[int, dict[str, float]], None] | None, content: ContentLoss | None) -> TrainResult:
    t, m = cfg.train, cfg.model
    basicsr = import_basicsr()  # noqa: F841  (bridges torchvision before basicsr submodules)
    from basicsr.losses.basic_loss import L1Loss, MSELoss
    from basicsr.losses.gan_loss import GANLoss

    ckpt_path = out_dir / CHECKPOINT_DIR / CHECKPOINT_FILE
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    pairs, _ = match_sets(hr_dir, lr_dir, m.scale, splits=["train"])
    sampler = PatchSampler(pairs, t.patch_size, m.scale, seed, t.max_cached_images)
    gan = use_gan_phase(t.gan_iters, t.vgg19_weights, t.force_perceptual, content is not None)
    total = t.pretrain_iters + (t.gan_iters if gan else 0)

    torch.manual_seed(seed)
    g = build_generator(m.num_feat, m.num_block, m.scale, m.trunk_init_scale)
    if t.pretrained_generator:
        load_generator_into(g, t.pretrained_generator)
    d = build_discriminator(m.disc_num_feat, m.scale * t.patch_size) if gan else None
    percep = (content or VGGContentLoss(t.vgg19_weights)) if gan else None
    pixel = (L1Loss if t.pixel_loss == "l1" else MSELoss)(loss_weight=1.0)
    gan_loss = GANLoss("vanilla", loss_weight=t.adversarial_weight)
    for mod in (g, d, percep, pixel, gan_loss):
        if mod is not None:
            mod.to(device)

    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)
    if amp_dtype is not None and device.type != "cuda":
        log.info("sr.train.amp=%s applies to CUDA only; training in fp32 on %s", t.amp, device)
        amp_dtype = None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)

    def autocast():
        return torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else nullcontext()

    def make_phase(step: int) -> _Phase:
        if step < t.pretrain_iters:
            return _Phase("pretrain", g, None, cfg, t.pretrain_iters)
        return _Phase("gan", g, d, cfg, t.gan_iters)

    step, rows = 0, []
    phase = make_phase(0) if total else None
    fp = run_fingerprint(cfg, seed, sampler.pairs, gan, device, HashState(ckpt_path.parent / HASH_STATE_FILE), percep)
    ckpt = resumable(ckpt_path, fp)
    if ckpt is None:
        (out_dir / GENERATOR_FILE).unlink(missing_ok=True)  # never leave another run's generator beside this one
    else:
        try:
            g.load_state_dict(ckpt["generator"])
            step = int(ckpt["step"])
            phase = make_phase(min(step, max(total - 1, 0))) if total else None
            if d is not None and ckpt.get("discriminator") is not None:
                d.load_state_dict(ckpt["discriminator"])
            if phase is not None and ckpt["phase"] is not None and ckpt["phase"]["name"] == phase.name:
                phase.load_state_dict(ckpt["phase"])
            if ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            sampler.load_state_dict(ckpt["sampler"])
            set_rng_state(ckpt["rng"])
            rows = [r for r in ckpt["log"] if int(r["step"]) <= step]
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{ckpt_path}: checkpoint does not fit this run ({type(exc).__name__}: {exc}); "
                                  "delete it to retrain") from exc
        log.info("resuming SR training from %s at step %d/%d", ckpt_path, step, total)

    def save_checkpoint() -> None:
        state = {
            "step": step,
            "fingerprint": fp,
            "generator": g.state_dict(),
            "discriminator": d.state_dict() if d is not None else None,
            "phase": phase.state_dict() if phase is not None else None,
            "scaler": scaler.state_dict(),
            "sampler": sampler.state_dict(),
            "rng": rng_state(),
            "log": rows,
        }
        save_state(ckpt_path, state)
        _write_log(out_dir / LOG_FILE, rows)

    bar = tqdm(total=total, initial=min(step, total), desc="sr train", unit="it", dynamic_ncols=True)
    while step < total:
        if step == t.pretrain_iters and phase.name == "pretrain":
            phase = make_phase(step)
        lr_np, hr_np = sampler.sample(t.batch_size)
        lr_t = torch.from_numpy(lr_np).to(device)
        hr_t = torch.from_numpy(hr_np).to(device)
        g.train()
        losses: dict[str, float] = {}
        if phase.name == "pretrain":
            with autocast():
                l_pix = pixel(g(lr_t).float(), hr_t)
            phase.opt_g.zero_grad(set_to_none=True)
            scaler.scale(l_pix).backward()
            scaler.step(phase.opt_g)
            scaler.update()
            losses = {"pixel": l_pix.item(), "g_total": l_pix.item()}
        else:
            for p in d.parameters():
                p.requires_grad_(False)
            with autocast():
                fake = g(lr_t)
                l_pix = t.pixel_weight * pixel(fake.float(), hr_t)
                l_percep = t.perceptual_weight * percep(fake.float(), hr_t)
                # basicsr's discriminator flattens with .view(): feed it contiguous tensors
                l_adv = gan_loss(d(fake.contiguous()), True, is_disc=False)
                l_g = l_pix + l_percep + l_adv
            phase.opt_g.zero_grad(set_to_none=True)
            scaler.scale(l_g).backward()
            scaler.step(phase.opt_g)
            for p in d.parameters():
                p.requires_grad_(True)
            with autocast():
                l_d = gan_loss(d(hr_t), True, is_disc=True) + gan_loss(d(fake.detach().contiguous()), False, is_disc=True)
            phase.opt_d.zero_grad(set_to_none=True)
            scaler.scale(l_d).backward()
            scaler.step(phase.opt_d)
            scaler.update()
            phase.sched_d.step()
            losses = {"pixel": l_pix.item(), "perceptual": l_percep.item(), "adversarial": l_adv.item(),
                      "d_loss": l_d.item(), "g_total": l_g.item()}
        lr_now = phase.opt_g.param_groups[0]["lr"]
        phase.sched_g.step()
        step += 1
        if step % t.log_every == 0 or step == total:
            rows.append({"step": step, "phase": phase.name, "lr_g": lr_now,
                         **{k: losses.get(k, "") for k in LOG_COLUMNS[3:]}})
        if step % t.checkpoint_every == 0 or step == total:
            save_checkpoint()
        bar.update(1)
        bar.set_postfix(phase=phase.name, loss=f"{losses['g_total']:.4f}")
        if callback is not None:
            callback(step, losses)
    bar.close()

    if not ckpt_path.exists():  # zero-iteration run (e.g. a pretrained generator used as is)
        save_checkpoint()
    gen_path = out_dir / GENERATOR_FILE
    save_state(gen_path, {"params": {k: v.cpu() for k, v in g.state_dict().items()},
                          "meta": {"model": dataclasses.asdict(m), "steps": step, "gan": gan, "seed": seed,
                                   "content": percep.name if percep is not None else None}})
    _write_log(out_dir / LOG_FILE, rows)
    return TrainResult(gen_path, out_dir / LOG_FILE, step, gan)

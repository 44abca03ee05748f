import csv
import dataclasses

import pytest
import torch

from pipeline.sr.config import SRConfig, SRModelConfig, SRTrainConfig
from pipeline.sr.train import CHECKPOINT_DIR, CHECKPOINT_FILE, CheckpointError, train_sr
from pipeline.sr.weights import generator_state


def _cfg(**train) -> SRConfig:
    base = dict(pretrain_iters=6, gan_iters=0, patch_size=8, batch_size=2, checkpoint_every=3, log_every=1,
                lr_milestones=[0.5])
    return SRConfig(model=SRModelConfig(num_feat=8, num_block=1), train=SRTrainConfig(**(base | train)))


def _log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


class Interrupt(Exception):
    pass


def test_resume_is_exact(synthetic_pair, tmp_path):
    hr, lr = synthetic_pair
    cfg = _cfg()
    full = train_sr(hr, lr, tmp_path / "full", cfg, seed=3, device="cpu")

    def crash(step, _):
        if step == 4:  # after the checkpoint at step 3: step 4 is lost and redone
            raise Interrupt

    with pytest.raises(Interrupt):
        train_sr(hr, lr, tmp_path / "resumed", cfg, seed=3, device="cpu", callback=crash)
    assert not (tmp_path / "resumed" / "generator.pth").exists()
    resumed = train_sr(hr, lr, tmp_path / "resumed", cfg, seed=3, device="cpu")
    assert resumed.steps == full.steps == 6
    a, b = generator_state(full.generator), generator_state(resumed.generator)
    assert all(torch.equal(a[k], b[k]) for k in a)
    log_a, log_b = _log(full.log), _log(resumed.log)
    assert [r["step"] for r in log_b] == [str(i) for i in range(1, 7)]
    assert log_a == log_b
    # a finished run is not retrained
    again = train_sr(hr, lr, tmp_path / "resumed", cfg, seed=3, device="cpu")
    assert again.steps == 6 and _log(again.log) == log_b


def test_short_training_lowers_pixel_loss_on_photos(photo_pair, tmp_path):
    hr, lr = photo_pair
    cfg = _cfg(pretrain_iters=40, patch_size=12, batch_size=4, lr_g=2e-3, checkpoint_every=40, log_every=1,
               lr_milestones=[0.9])
    res = train_sr(hr, lr, tmp_path / "m", cfg, seed=0, device="cpu")
    losses = [float(r["pixel"]) for r in _log(res.log)]
    assert len(losses) == 40
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.8 * first


def test_gan_phase_runs_with_forced_random_vgg(synthetic_pair, tmp_path, caplog):
    hr, lr = synthetic_pair
    cfg = dataclasses.replace(_cfg(pretrain_iters=1, gan_iters=1, patch_size=32, batch_size=1,
                                   force_perceptual=True, checkpoint_every=1),
                              model=SRModelConfig(num_feat=8, num_block=1, disc_num_feat=4))
    # only the 'b' image (LR 33x32) has LR sides >= 32; the sampler uses just that one
    res = train_sr(hr, lr, tmp_path / "gan", cfg, seed=0, device="cpu")
    rows = _log(res.log)
    assert res.gan and [r["phase"] for r in rows] == ["pretrain", "gan"]
    assert rows[1]["adversarial"] and rows[1]["d_loss"] and rows[1]["perceptual"]
    assert "RANDOMLY initialised VGG19" in caplog.text


def test_no_vgg_weights_trains_pixel_loss_only(synthetic_pair, tmp_path, caplog):
    hr, lr = synthetic_pair
    res = train_sr(hr, lr, tmp_path / "m", _cfg(pretrain_iters=2, gan_iters=50), seed=0, device="cpu")
    assert not res.gan and res.steps == 2
    assert "skipping the SRGAN" in caplog.text


def test_corrupt_checkpoint_is_a_clear_error(synthetic_pair, tmp_path):
    hr, lr = synthetic_pair
    ckpt = tmp_path / "m" / CHECKPOINT_DIR / CHECKPOINT_FILE
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="last.pth: corrupt or unreadable"):
        train_sr(hr, lr, tmp_path / "m", _cfg(), seed=0, device="cpu")


def test_checkpoint_of_another_model_is_not_resumed(synthetic_pair, tmp_path, caplog):
    hr, lr = synthetic_pair
    train_sr(hr, lr, tmp_path / "m", _cfg(pretrain_iters=1), seed=0, device="cpu")
    other = dataclasses.replace(_cfg(pretrain_iters=2), model=SRModelConfig(num_feat=4, num_block=1))
    res = train_sr(hr, lr, tmp_path / "m", other, seed=0, device="cpu")
    assert res.steps == 2 and [r["step"] for r in _log(res.log)] == ["1", "2"]
    assert "not resumed: sr.model.num_feat differs (8 -> 4)" in caplog.text
    assert generator_state(res.generator)["conv_first.weight"].shape[0] == 4


def test_patch_larger_than_every_image_is_a_clear_error(synthetic_pair, tmp_path):
    hr, lr = synthetic_pair
    with pytest.raises(ValueError, match="patch_size 64"):
        train_sr(hr, lr, tmp_path / "m", _cfg(patch_size=64), seed=0, device="cpu")

"""The SRGAN phase as its own stage: from a pixel-phase generator, content loss on a detector's features."""

import csv
import dataclasses
import json

import pytest
import torch

from pipeline.data.schema import read_records
from pipeline.sr.config import SRConfig, SRModelConfig, SRTrainConfig, gan_phase, pixel_phase
from pipeline.sr.train import CHECKPOINT_DIR, CHECKPOINT_FILE, train_sr, train_srgan
from pipeline.sr.weights import generator_state, load_generator
from tests.sr.test_perceptual import save_tiny_detector

MODEL = SRModelConfig(num_feat=8, num_block=1, disc_num_feat=4)


def _cfg(**train) -> SRConfig:
    # only the synthetic 'b' image (LR 33x32) has LR sides >= gan_patch_size 32: the sampler uses just that one
    base = dict(pretrain_iters=2, gan_iters=4, patch_size=8, gan_patch_size=32, batch_size=1, checkpoint_every=2,
                log_every=1, lr_milestones=[0.5])
    return SRConfig(model=MODEL, train=SRTrainConfig(**(base | train)))


@pytest.fixture
def start(synthetic_pair, tmp_path):
    """A pixel-phase generator (as stage sr_train writes it) and a detector checkpoint."""
    hr, lr = synthetic_pair
    pixel = train_sr(hr, lr, tmp_path / "sr", pixel_phase(_cfg()), seed=0, device="cpu")
    assert not pixel.gan and pixel.steps == 2
    return pixel.generator, save_tiny_detector(tmp_path / "det" / "model.pt")


def _log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


class Interrupt(Exception):
    pass


def test_gan_phase_writes_a_loadable_generator_and_resumes_exactly(synthetic_pair, start, tmp_path):
    hr, lr = synthetic_pair
    generator, detector = start
    full = train_srgan(hr, lr, generator, detector, tmp_path / "full", _cfg(), seed=1, device="cpu")
    assert full.gan and full.steps == 4
    rows = _log(full.log)
    assert [r["phase"] for r in rows] == ["gan"] * 4 and all(float(r["perceptual"]) > 0 for r in rows)
    assert all(r["adversarial"] and r["d_loss"] for r in rows)
    g = load_generator(full.generator)
    assert g(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)
    assert torch.load(full.generator, weights_only=True)["meta"]["content"] == "detector:conv4_3"
    # it moved away from the generator it started from
    before, after = generator_state(generator), generator_state(full.generator)
    assert any(not torch.equal(before[k], after[k]) for k in before)

    def crash(step, _):
        if step == 3:  # after the checkpoint at step 2
            raise Interrupt

    with pytest.raises(Interrupt):
        train_srgan(hr, lr, generator, detector, tmp_path / "resumed", _cfg(), seed=1, device="cpu", callback=crash)
    resumed = train_srgan(hr, lr, generator, detector, tmp_path / "resumed", _cfg(), seed=1, device="cpu")
    a, b = generator_state(full.generator), generator_state(resumed.generator)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _log(resumed.log) == rows


def test_another_feature_detector_invalidates_the_checkpoint(synthetic_pair, start, tmp_path, caplog):
    hr, lr = synthetic_pair
    generator, detector = start
    cfg = _cfg(gan_iters=2, checkpoint_every=1)
    train_srgan(hr, lr, generator, detector, tmp_path / "m", cfg, seed=0, device="cpu")
    save_tiny_detector(detector, seed=5)  # the stage sr_features re-ran: same path, other weights
    again = train_srgan(hr, lr, generator, detector, tmp_path / "m", dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, gan_iters=3)), seed=0, device="cpu")
    assert "not resumed" in caplog.text and "content network file changed" in caplog.text
    assert [r["step"] for r in _log(again.log)] == ["1", "2", "3"]
    # the pixel-phase generator is part of the fingerprint too
    caplog.clear()
    torch.save({"params": {k: v + 0.01 for k, v in generator_state(generator).items()}}, generator)
    train_srgan(hr, lr, generator, detector, tmp_path / "m", cfg, seed=0, device="cpu")
    assert "sr.train.pretrained_generator file changed" in caplog.text


def test_the_phases_read_their_own_keys():
    a = _cfg(gan_iters=7, lr_d=3e-4, gan_patch_size=64, vgg19_weights="/x/vgg19.pth")
    b = dataclasses.replace(_cfg(), model=dataclasses.replace(MODEL, disc_num_feat=64))
    assert pixel_phase(a) == pixel_phase(b) and pixel_phase(a).train.gan_iters == 0  # sr_train: same run
    assert pixel_phase(_cfg(patch_size=12)) != pixel_phase(b)
    g = gan_phase(a, "sr/generator.pth").train
    assert (g.pretrain_iters, g.patch_size, g.lr_g, g.pretrained_generator) == (0, 64, a.train.gan_lr_g,
                                                                              "sr/generator.pth")


def test_stages_write_the_srgan_set_and_both_qualities(synthetic_pair, start, tmp_path):
    from stages import sr_infer, srgan_train

    hr, lr = synthetic_pair
    generator, detector = start
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\nsr:\n  model: {num_feat: 8, num_block: 1, disc_num_feat: 4}\n"
                      "  train: {gan_iters: 2, gan_patch_size: 32, batch_size: 1, checkpoint_every: 2, log_every: 1}\n"
                      "  perceptual: {layer: conv3_3}\n  infer: {tile: 32, tile_overlap: 8}\n")
    srgan_train.main(["--hr", str(hr), "--lr", str(lr), "--generator", str(generator), "--features", str(detector),
                      "--out", str(tmp_path / "srgan"), "--params", str(params)])
    assert len(_log(tmp_path / "srgan" / "loss_log.csv")) == 2
    assert (tmp_path / "srgan" / CHECKPOINT_DIR / CHECKPOINT_FILE).is_file()
    sr_infer.main(["--lr", str(lr), "--hr", str(hr), "--model", str(generator), "--sr-out", str(tmp_path / "sr"),
                   "--srgan-model", str(tmp_path / "srgan" / "generator.pth"), "--srgan-out", str(tmp_path / "sg"),
                   "--bicubic-out", str(tmp_path / "bic"), "--metrics", str(tmp_path / "q.json"),
                   "--figure", str(tmp_path / "fig.png"), "--params", str(params)])
    q = json.loads((tmp_path / "q.json").read_text())
    assert set(q) == {"sr", "srgan", "bicubic", "psnr_gain_db", "srgan_psnr_gain_db", "images", "split"}
    assert q["srgan_psnr_gain_db"] == pytest.approx(q["srgan"]["psnr"] - q["bicubic"]["psnr"], abs=2e-4)
    assert q["psnr_gain_db"] == pytest.approx(q["sr"]["psnr"] - q["bicubic"]["psnr"], abs=2e-4)
    assert q["srgan"]["psnr"] != q["sr"]["psnr"]  # two generators, two sets
    want = sorted(r.image_id for r in read_records(hr)[0])
    for out in ("sr", "sg", "bic"):
        assert sorted(r.image_id for r in read_records(tmp_path / out)[0]) == want
    with pytest.raises(SystemExit):
        sr_infer.main(["--lr", str(lr), "--hr", str(hr), "--model", str(generator), "--sr-out", str(tmp_path / "x"),
                       "--srgan-model", str(generator), "--bicubic-out", str(tmp_path / "y"),
                       "--metrics", str(tmp_path / "z.json"), "--figure", str(tmp_path / "f.png")])


@pytest.mark.parametrize(("section", "match"), [
    ({"train": {"gan_patch_size": 16}}, r"sr\.train\.gan_patch_size: .*128 or 256 px .* 16 LR px x4 = 64"),
    ({"perceptual": {"layer": "conv5_3"}}, r"sr\.perceptual\.layer: 'conv5_3' is not one of"),
    ({"perceptual": {"batch_size": 1}}, r"sr\.perceptual\.batch_size: must be >= 2"),
])
def test_bad_gan_params_name_their_key(section, match):
    from pipeline.config import ConfigError, parse

    with pytest.raises(ConfigError, match=match):
        parse(SRConfig, section, "sr")
    parse(SRConfig, {"train": {"gan_iters": 0, "gan_patch_size": 16}}, "sr")  # no GAN phase: no discriminator

import logging
from unittest import mock

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from pipeline.sr.models import build_generator
from pipeline.sr.train import use_gan_phase
from pipeline.sr.weights import (
    WeightsError,
    build_perceptual_loss,
    generator_state,
    load_generator,
    load_generator_into,
)


def test_loads_basicsr_release_layout_preferring_params_ema(tmp_path):
    torch.manual_seed(0)
    g, ema = build_generator(8, 2), build_generator(8, 2)
    path = tmp_path / "MSRResNet_x4.pth"
    torch.save({"params": g.state_dict(), "params_ema": {f"module.{k}": v for k, v in ema.state_dict().items()}}, path)
    loaded = load_generator(path)
    assert loaded.upscale == 4 and len(loaded.body) == 2
    for k, v in ema.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_corrupt_generator_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "generator.pth"
    bad.write_bytes(b"\x80\x02 not a torch file at all")
    with pytest.raises(WeightsError, match="generator.pth: not a readable PyTorch weights file"):
        load_generator(bad)
    with pytest.raises(WeightsError, match="not found"):
        generator_state(tmp_path / "missing.pth")


def test_other_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"params": torch.nn.Conv2d(3, 3, 3).state_dict()}, path)
    with pytest.raises(WeightsError, match="other.pth: not an MSRResNet state dict"):
        load_generator(path)
    torch.save({"params": build_generator(16, 3).state_dict()}, path)
    with pytest.raises(WeightsError, match=r"other.pth: weights do not fit .*'num_feat': 16, 'num_block': 3"):
        load_generator_into(build_generator(8, 2), path)


def test_missing_vgg_weights_fall_back_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert use_gan_phase(100, None, force_perceptual=False) is False
    assert "WARNING" in caplog.text and "vgg19_weights" in caplog.text
    assert use_gan_phase(100, None, force_perceptual=True) is True
    assert use_gan_phase(0, "x.pth", force_perceptual=False) is False


def test_bad_vgg_weights_path_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="nope.pth: VGG19 weights file not found"):
        build_perceptual_loss(str(tmp_path / "nope.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsError, match="wrong.pth: not torchvision vgg19 weights"):
        build_perceptual_loss(str(wrong))


def test_vgg19_features_load_from_a_torchvision_file_without_network(tmp_path):
    torch.manual_seed(0)
    features = make_layers(cfgs["E"])  # torchvision vgg19().features, without the big classifier
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    with mock.patch("torch.hub.load_state_dict_from_url", side_effect=AssertionError("network used")):
        loss = build_perceptual_loss(str(path))
    vgg = loss.vgg.vgg_net
    assert torch.equal(vgg.conv1_1.weight, features[0].weight)
    assert torch.equal(vgg.conv5_4.weight, features[34].weight)  # torchvision index 34 = conv5_4
    assert not any(p.requires_grad for p in loss.parameters())
    x = torch.rand(1, 3, 32, 32)
    value, _ = loss(x, x.flip(-1))
    assert value.item() > 0 and loss(x, x)[0].item() == 0

import pytest
import torch

from pipeline.config import ConfigError, section
from pipeline.sr.basicsr_compat import import_basicsr
from pipeline.sr.config import SRConfig
from pipeline.sr.models import build_discriminator, build_generator, generator_shape


def test_import_basicsr_on_this_torchvision():
    basicsr = import_basicsr()
    assert basicsr.__version__.startswith("1.4.2")
    from basicsr.archs.srresnet_arch import MSRResNet
    from basicsr.losses.gan_loss import GANLoss

    assert MSRResNet and GANLoss


@pytest.mark.parametrize("scale", [2, 4])
def test_srresnet_output_is_scale_times_input(scale):
    g = build_generator(num_feat=8, num_block=1, scale=scale)
    y = g(torch.rand(2, 3, 13, 17))
    assert y.shape == (2, 3, 13 * scale, 17 * scale)
    assert generator_shape(g.state_dict()) == {"num_feat": 8, "num_block": 1, "scale": scale}


def test_discriminator_takes_128_or_256_only():
    d = build_discriminator(num_feat=4, input_size=128)
    assert d(torch.rand(2, 3, 128, 128)).shape == (2, 1)
    with pytest.raises(ValueError, match="patch_size"):
        build_discriminator(num_feat=4, input_size=96)


def test_config_defaults_and_errors_name_the_key():
    cfg = section({"sr": {}}, "sr", SRConfig)
    assert cfg.model.num_block == 4 and cfg.train.pixel_loss == "mse" and cfg.infer.splits == ["train", "test"]
    with pytest.raises(ConfigError, match=r"sr\.train\.bogus"):
        section({"sr": {"train": {"bogus": 1}}}, "sr", SRConfig)
    with pytest.raises(ConfigError, match=r"sr\.infer\.tile_overlap"):
        section({"sr": {"infer": {"tile": 16, "tile_overlap": 16}}}, "sr", SRConfig)
    with pytest.raises(ConfigError, match=r"sr\.train\.pixel_loss"):
        section({"sr": {"train": {"pixel_loss": "huber"}}}, "sr", SRConfig)

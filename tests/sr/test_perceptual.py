"""The task-driven content loss: a frozen detector trunk between SR and HR patches."""

import pytest
import torch

from pipeline.detector.checkpoint import save_detector
from pipeline.detector.model import ModelConfig, build_detector
from pipeline.runstate import CheckpointError
from pipeline.sr.config import SRPerceptualConfig, SRTrainConfig
from pipeline.sr.models import build_generator
from pipeline.sr.perceptual import DetectorContentLoss, build_content_loss


def save_tiny_detector(path, seed: int = 0):
    """A real detector checkpoint: BatchNorm SSD300 at 1/16 width (the trunk's running stats set)."""
    torch.manual_seed(seed)
    model = build_detector(ModelConfig(width=0.0625, batch_norm=True), num_classes=2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    save_detector(path, model, extra={"classes": ["cat", "bottle"]})
    return path


@pytest.fixture(scope="module")
def detector_path(tmp_path_factory):
    return save_tiny_detector(tmp_path_factory.mktemp("det") / "model.pt")


def _patches(seed: int, n: int = 2, side: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


def test_gradient_reaches_the_generator_not_the_detector(detector_path):
    loss_fn = DetectorContentLoss(detector_path, "conv4_3")
    torch.manual_seed(0)
    g = build_generator(8, 1)
    hr = _patches(1, side=32)
    loss = loss_fn(g(_patches(2, side=8)), hr)
    loss.backward()
    assert loss.item() > 0
    assert all(p.grad is not None for p in g.parameters())
    assert sum(p.grad.abs().sum().item() for p in g.parameters()) > 0
    assert all(not p.requires_grad and p.grad is None for p in loss_fn.parameters())
    loss_fn.train()  # a caller putting every module in train mode leaves the features fixed
    assert not loss_fn.training and not loss_fn.detector.training


def test_identical_images_give_zero_and_the_features_are_the_detectors(detector_path):
    loss_fn = DetectorContentLoss(detector_path, "conv3_3")
    hr = _patches(3, side=32)
    assert loss_fn(hr.clone(), hr).item() == 0.0
    assert loss_fn(hr + 0.05, hr).item() > 0
    # the detector's own input contract (SSD.normalize) and trunk, up to conv3_3 (stride 4 -> 8x8)
    trunk = loss_fn.detector.backbone.trunk
    want = trunk.features[: trunk.layout["conv3_3_relu"] + 1](loss_fn.detector.normalize(hr))
    assert want.shape == (2, trunk.out_channels[0], 8, 8)
    assert torch.equal(loss_fn.features(hr), want)
    assert loss_fn.name == "detector:conv3_3" and loss_fn.source == str(detector_path)


def test_not_a_detector_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"detector checkpoint not found: .*missing\.pt"):
        DetectorContentLoss(tmp_path / "missing.pt")
    gen = tmp_path / "generator.pth"
    torch.save({"params": build_generator(8, 1).state_dict()}, gen)
    with pytest.raises(CheckpointError, match=r"generator\.pth: not a detector checkpoint"):
        DetectorContentLoss(gen)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt: corrupt or unreadable detector checkpoint"):
        DetectorContentLoss(junk)


def test_builder_picks_vgg_only_when_asked(detector_path):
    loss = build_content_loss(SRTrainConfig(), SRPerceptualConfig(layer="conv4_3"), detector_path)
    assert isinstance(loss, DetectorContentLoss) and loss.name == "detector:conv4_3"
    with pytest.raises(ValueError, match="needs a detector checkpoint"):
        build_content_loss(SRTrainConfig(), SRPerceptualConfig(), None)

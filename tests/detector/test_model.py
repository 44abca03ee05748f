"""Model assembly: output shapes per variant, decode, parameter counts, autocast, config errors."""

from __future__ import annotations

import logging

import pytest
import torch

from pipeline.config import ConfigError, parse
from pipeline.detector.fem import FEM
from pipeline.detector.model import ModelConfig, build_detector, describe

VARIANTS = ["ssd", "shallow", "fem", "atss", "mdssd", "shallow+fem+atss", "mdssd+fem"]
# (variant, batch_norm): every variant without BN, and BN composed with every module kind
# (trunk + extras, conv3_3 source, FEM, MDSSD fusion modules, ATSS).
CASES = [(v, False) for v in VARIANTS] + [("shallow+fem+atss", True), ("mdssd+fem", True)]


def conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


# Hand count of SSD300 (Liu et al. 2016, Fig. 2) for 20 classes + background.
VGG = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
       (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]  # fmt: skip
BACKBONE = sum(conv(a, b, 3) for a, b in VGG) + conv(512, 1024, 3) + conv(1024, 1024, 1)
EXTRAS = (
    conv(1024, 256, 1)
    + conv(256, 512, 3)
    + conv(512, 128, 1)
    + conv(128, 256, 3)
    + 2 * (conv(256, 128, 1) + conv(128, 256, 3))
)
SOURCES = [(512, 4), (1024, 6), (512, 6), (256, 6), (256, 4), (256, 4)]  # (channels, boxes per cell)
HEADS = sum(conv(c, b * 21, 3) + conv(c, b * 4, 3) for c, b in SOURCES)
SSD300_PARAMS = BACKBONE + EXTRAS + 512 + HEADS  # + conv4_3 L2Norm scales
SHALLOW_EXTRA = 256 + conv(256, 4 * 21, 3) + conv(256, 4 * 4, 3)  # conv3_3 L2Norm + heads
FEM_EXTRA = sum(conv(c, c, 3, bias=False) + 2 * c for c, _ in SOURCES[:5])  # none on conv11_2
# ScratchDet BN: vgg16_bn keeps the conv biases and adds BN (2 params per channel) to each
# of the 13 convs; fc6, fc7 and the 8 extra convs lose their bias and gain a BN.
EXTRA_CONVS = [(1024, 256, 1), (256, 512, 3), (512, 128, 1), (128, 256, 3)] + 2 * [(256, 128, 1), (128, 256, 3)]
SSD300_BN_PARAMS = (
    sum(conv(a, b, 3) + 2 * b for a, b in VGG)
    + conv(512, 1024, 3, bias=False) + 2 * 1024
    + conv(1024, 1024, 1, bias=False) + 2 * 1024
    + sum(conv(a, b, k, bias=False) + 2 * b for a, b, k in EXTRA_CONVS)
    + 512
    + HEADS
)


def test_parameter_counts_match_hand_count():
    assert SSD300_PARAMS == 26_285_486  # the published ssd.pytorch SSD300 VOC model size
    counts = {
        v: describe(build_detector(ModelConfig(variant=v), 20, init_backbone=False))["params"]
        for v in ("ssd", "shallow", "fem", "atss")
    }
    assert counts == {
        "ssd": SSD300_PARAMS,
        "shallow": SSD300_PARAMS + SHALLOW_EXTRA,
        "fem": SSD300_PARAMS + FEM_EXTRA,
        "atss": SSD300_PARAMS,
    }


def test_batch_norm_parameter_count_matches_hand_count():
    info = describe(build_detector(ModelConfig(batch_norm=True), 20, init_backbone=False))
    assert info["batch_norm"] is True and info["params"] == SSD300_BN_PARAMS


def _bn_count(variant: str) -> int:
    """BatchNorms a ScratchDet model must have: 13 VGG convs + fc6 + fc7 + 8 extra convs,
    plus per MDSSD module one per ReLU (2 deep-branch convs + fusion conv at 300 input)."""
    return 23 + (9 if "mdssd" in variant else 0)


def test_batch_norm_trunk_has_the_vgg16_bn_layout():
    import torchvision

    model = build_detector(ModelConfig(batch_norm=True, width=0.125), 3, init_backbone=False)
    ours = [type(m).__name__ for m in model.backbone.trunk.features]
    theirs = [type(m).__name__ for m in torchvision.models.vgg16_bn(weights=None).features]
    assert ours == theirs


@pytest.mark.parametrize(("variant", "batch_norm"), CASES)
def test_output_shapes_and_decode(variant, batch_norm):
    torch.manual_seed(0)
    model = build_detector(
        ModelConfig(variant=variant, width=0.125, batch_norm=batch_norm), num_classes=3, init_backbone=False
    ).eval()
    info = describe(model)
    a = info["anchors"]
    assert a == sum(lv["anchors"] for lv in info["levels"]) == model.anchors.shape[0]
    with torch.no_grad():
        cls, box = model(torch.rand(1, 3, 300, 300))
    assert cls.shape == (1, a, 4) and box.shape == (1, a, 4)
    boxes, scores = model.decode(cls, box)
    assert boxes.shape == (1, a, 4) and scores.shape == (1, a, 3)
    assert boxes.min() >= 0 and boxes.max() <= 1
    torch.testing.assert_close(scores.sum(-1) + torch.softmax(cls, -1)[..., 0], torch.ones(1, a))
    # zero offsets decode to the default boxes themselves
    zero, _ = model.decode(cls, torch.zeros_like(box))
    a_xyxy = model.anchors_xyxy.clamp(0, 1)
    torch.testing.assert_close(zero[0], a_xyxy)
    n_fem = sum(isinstance(m, FEM) for m in model.modules())
    assert n_fem == (len(model.levels) - 1 if "fem" in variant else 0)  # every level but the 1x1 one
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) - n_fem
    assert n_bn == (_bn_count(variant) if batch_norm else 0)


def test_uint8_input_equals_float_and_bad_shapes_are_rejected():
    model = build_detector(ModelConfig(width=0.125), 2, init_backbone=False).eval()
    img = torch.randint(0, 256, (1, 3, 300, 300), dtype=torch.uint8)
    with torch.no_grad():
        a, _ = model(img)
        b, _ = model(img.float() / 255)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"\(N, 3, 300, 300\)"):
        model(torch.rand(1, 3, 320, 320))
    with pytest.raises(ValueError, match="gt_boxes"):
        model.loss(a, a, torch.zeros(1, 4), torch.zeros(1, 1, dtype=torch.long))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_forward_and_loss_under_bf16_autocast_and_channels_last(batch_norm):
    torch.manual_seed(0)
    model = build_detector(
        ModelConfig(variant="shallow+fem", width=0.125, batch_norm=batch_norm), 3, init_backbone=False
    )
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 300, 300).to(memory_format=torch.channels_last)
    gt = torch.tensor([[[0.1, 0.1, 0.2, 0.15], [0.3, 0.3, 0.9, 0.8]], [[0.5, 0.5, 0.6, 0.7], [0, 0, 0, 0]]])
    gl = torch.tensor([[1, 2], [3, 0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cls, box = model(x)
        losses = model.loss(cls, box, gt, gl)
    assert cls.dtype == torch.bfloat16
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_config_validation_and_random_init_warning(caplog):
    with pytest.raises(ConfigError, match="model.backbone_weights: pretrained VGG16 weights need width 1.0"):
        parse(ModelConfig, {"width": 0.5, "backbone_weights": "vgg16.pth"}, "model")
    with pytest.raises(ConfigError, match="model.iou_threshold"):
        parse(ModelConfig, {"iou_threshold": 1.5}, "model")
    with pytest.raises(ConfigError, match="model.first_scale"):
        parse(ModelConfig, {"first_scale": 0.3}, "model")
    with pytest.raises(ConfigError, match="model.input_size"):
        build_detector(ModelConfig(input_size=128, width=0.125), 3)
    with caplog.at_level(logging.WARNING, logger="pipeline.detector.model"):
        build_detector(ModelConfig(width=0.125), 3)
    assert "randomly initialised" in caplog.text

"""Checkpoint round trip / mismatch, and ImageNet VGG16 weight loading from a torchvision state dict."""

from __future__ import annotations

import logging

import pytest
import torch
import torchvision

from pipeline.detector.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    load_detector,
    load_weights_into,
    save_detector,
)
from pipeline.detector.model import ModelConfig, build_detector
from pipeline.detector.weights import WeightsError, load_vgg16_weights


def test_round_trip_restores_variant_config_weights_and_extra(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(variant="fem+shallow", width=0.125, atss_topk=7)
    model = build_detector(cfg, 3, init_backbone=False).eval()
    x = torch.rand(1, 3, 300, 300)
    with torch.no_grad():
        ref = model(x)
    path = tmp_path / "ckpt" / "model.pt"
    save_detector(path, model, extra={"classes": ["a", "b", "c"], "epoch": 4})
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # atomic: no temp left
    loaded, extra = load_detector(path)
    assert loaded.config == cfg and loaded.num_classes == 3 and loaded.variant.name == "shallow+fem"
    assert extra == {"classes": ["a", "b", "c"], "epoch": 4}
    with torch.no_grad():
        out = loaded.eval()(x)
    torch.testing.assert_close(out, ref)
    # same variant spelled differently and a different init source: still compatible
    other = build_detector(
        ModelConfig(variant="shallow+fem", width=0.125, atss_topk=7), 3, init_backbone=False
    )
    assert load_weights_into(other, path)["epoch"] == 4


@pytest.mark.parametrize(
    ("cfg", "num_classes", "message"),
    [
        (
            ModelConfig(variant="shallow", width=0.125),
            3,
            r"variant 'shallow\+fem'.*model is variant 'shallow'",
        ),
        (ModelConfig(variant="shallow+fem", width=0.25), 3, r"'width': \(0.125, 0.25\)"),
        (ModelConfig(variant="shallow+fem", width=0.125), 5, r"\(3 classes\).*\(5 classes\)"),
        (ModelConfig(variant="shallow+fem", width=0.125, batch_norm=True), 3, r"'batch_norm': \(False, True\)"),
    ],
)
def test_loading_into_another_model_names_both(tmp_path, cfg, num_classes, message):
    path = tmp_path / "m.pt"
    save_detector(
        path, build_detector(ModelConfig(variant="shallow+fem", width=0.125), 3, init_backbone=False)
    )
    target = build_detector(cfg, num_classes, init_backbone=False)
    with pytest.raises(CheckpointMismatchError, match=message):
        load_weights_into(target, path)


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_detector(bad)
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"missing \['format'"):
        load_detector(tmp_path / "other.pt")


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    """A genuine torchvision ``vgg16`` state dict (random init; ImageNet weights need internet)."""
    torch.manual_seed(0)
    state = torchvision.models.vgg16(weights=None).state_dict()
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(state, path)
    return state, path


def test_backbone_loads_torchvision_vgg16_state_dict(vgg16_file, tmp_path):
    state, path = vgg16_file
    model = build_detector(ModelConfig(backbone_weights=str(path)), 20)
    trunk = model.backbone.trunk
    for i in (0, 14, 28):  # conv1_1, conv3_3, conv5_3
        assert torch.equal(trunk.features[i].weight, state[f"features.{i}.weight"])
    # fc6 / fc7 decimated from the classifier (SSD §3): every 4th unit, every 3rd 7x7 tap
    fc6 = state["classifier.0.weight"].view(4096, 512, 7, 7)
    assert torch.equal(trunk.fc6.weight, fc6[::4, :, ::3, ::3])
    assert torch.equal(trunk.fc7.weight[:, :, 0, 0], state["classifier.3.weight"][::4, ::4])
    assert torch.equal(trunk.fc7.bias, state["classifier.3.bias"][::4])

    small = build_detector(ModelConfig(width=0.25), 20, init_backbone=False)
    with pytest.raises(
        WeightsError, match=r"vgg16.pth: features.0.weight has shape .* needs model.width = 1.0"
    ):
        load_vgg16_weights(small.backbone.trunk, path)
    with pytest.raises(WeightsError, match="not found"):
        load_vgg16_weights(small.backbone.trunk, tmp_path / "missing.pth")


def test_batch_norm_round_trip_and_checkpoints_without_the_field(tmp_path):
    torch.manual_seed(0)
    model = build_detector(ModelConfig(width=0.125, batch_norm=True), 2, init_backbone=False)
    with torch.no_grad():
        model(torch.rand(2, 3, 300, 300))  # train mode: moves the BN running statistics
    model.eval()
    x = torch.rand(1, 3, 300, 300)
    with torch.no_grad():
        ref = model(x)
    save_detector(tmp_path / "bn.pt", model)
    loaded, _ = load_detector(tmp_path / "bn.pt")
    assert loaded.config.batch_norm
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), ref)
    # a checkpoint written before the field existed is the plain (BN-free) model
    plain = build_detector(ModelConfig(width=0.125), 2, init_backbone=False)
    save_detector(tmp_path / "old.pt", plain)
    ckpt = torch.load(tmp_path / "old.pt", weights_only=True)
    del ckpt["config"]["batch_norm"]
    torch.save(ckpt, tmp_path / "old.pt")
    assert not load_detector(tmp_path / "old.pt")[0].config.batch_norm


def test_backbone_loads_torchvision_vgg16_bn_state_dict(vgg16_file, tmp_path, caplog):
    torch.manual_seed(0)
    state = torchvision.models.vgg16_bn(weights=None).state_dict()
    for k, v in state.items():  # fresh BN tensors equal our own init: make them distinguishable
        if v.is_floating_point() and ("running" in k or k.endswith(("bias", "weight"))) and v.dim() == 1:
            state[k] = torch.rand_like(v) + 0.5
    path = tmp_path / "vgg16_bn.pth"
    torch.save(state, path)
    model = build_detector(ModelConfig(backbone_weights=str(path), batch_norm=True), 20)
    trunk = model.backbone.trunk
    for i in (0, 20, 40):  # conv1_1, conv3_3, conv5_3 in the vgg16_bn layout
        assert torch.equal(trunk.features[i].weight, state[f"features.{i}.weight"])
        assert torch.equal(trunk.features[i].bias, state[f"features.{i}.bias"])
        for name in ("weight", "bias", "running_mean", "running_var"):  # the BN after it
            assert torch.equal(getattr(trunk.features[i + 1], name), state[f"features.{i + 1}.{name}"])
    fc6 = state["classifier.0.weight"].view(4096, 512, 7, 7)
    assert torch.equal(trunk.fc6.weight, fc6[::4, :, ::3, ::3]) and trunk.fc6.bias is None
    assert torch.equal(trunk.fc7.weight[:, :, 0, 0], state["classifier.3.weight"][::4, ::4])
    assert torch.equal(trunk.bn6.weight, torch.ones(1024)) and torch.equal(trunk.bn7.running_mean, torch.zeros(1024))

    # the other layout is refused by name, both ways
    _, plain_path = vgg16_file
    with pytest.raises(WeightsError, match=r"vgg16.pth: a torchvision vgg16 state dict, but model.batch_norm=True"):
        load_vgg16_weights(trunk, plain_path)
    plain = build_detector(ModelConfig(), 20, init_backbone=False)
    with pytest.raises(WeightsError, match=r"vgg16_bn.pth: a torchvision vgg16_bn state dict, but model.batch_norm=False"):
        load_vgg16_weights(plain.backbone.trunk, path)

    # features only (no classifier): fc6/fc7 stay random, with a warning
    no_fc = {k: v for k, v in state.items() if k.startswith("features.")}
    torch.save(no_fc, tmp_path / "features.pth")
    fc6_before = trunk.fc6.weight.clone()
    with caplog.at_level(logging.WARNING, logger="pipeline.detector.weights"):
        load_vgg16_weights(trunk, tmp_path / "features.pth")
    assert "no classifier weights" in caplog.text and torch.equal(trunk.fc6.weight, fc6_before)

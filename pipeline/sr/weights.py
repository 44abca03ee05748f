"""Loading weights from files: SR generators (ours or basicsr's released ``.pth``) and
ImageNet VGG19 for the perceptual loss, without any network access unless asked for.

basicsr 1.4.2's ``VGGFeatureExtractor`` calls ``torchvision.models.vgg19(pretrained=True)``
(a download) unless ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` exists in the
working directory.  :func:`build_perceptual_loss` constructs basicsr's ``PerceptualLoss``
with that constructor swapped for an offline ``vgg19(weights=None)`` and then loads the
features from the given state dict itself, mapping torchvision keys
(``features.<i>.weight``) to basicsr's layer names (``conv1_1.weight``, ...).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.sr.basicsr_compat import import_basicsr
from pipeline.sr.models import build_generator, generator_shape

log = logging.getLogger(__name__)

TORCHVISION = "torchvision"


class WeightsError(PipelineError, ValueError):
    """A weights file is missing, corrupt or does not fit the network; names the file."""


def _load(path: str | os.PathLike[str], what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {what} weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors of many types
        raise WeightsError(f"{path}: not a readable PyTorch weights file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: expected a state dict (mapping), got {type(obj).__name__}")
    return dict(obj)


def generator_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The MSRResNet state dict in ``path``.

    Accepts our ``generator.pth``, basicsr's released checkpoints (``params_ema`` preferred
    over ``params``) and bare state dicts; strips a DataParallel ``module.`` prefix.
    """
    obj = _load(path, "generator")
    for key in ("params_ema", "params", "state_dict"):
        if key in obj and isinstance(obj[key], Mapping):
            obj = dict(obj[key])
            break
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: state dict holds non-tensor values")
    try:
        generator_shape(state)
    except KeyError as exc:
        raise WeightsError(f"{path}: {exc.args[0]}") from exc
    return state


def load_generator(path: str | os.PathLike[str]) -> nn.Module:
    """Build an MSRResNet shaped like the weights in ``path`` and load them."""
    state = generator_state(path)
    model = build_generator(**generator_shape(state))
    _load_strict(model, state, path)
    return model


def load_generator_into(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load ``path`` into an existing generator; a different architecture is a clear error."""
    _load_strict(model, generator_state(path), path)


def _load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        shape = generator_shape(state) if "conv_first.weight" in state else {}
        raise WeightsError(
            f"{path}: weights do not fit the generator (file looks like {shape}); "
            f"missing {missing[:4]}, unexpected {unexpected[:4]}, shape mismatches {shapes[:3]}"
        )
    model.load_state_dict(state)


def vgg19_state(weights: str) -> dict[str, torch.Tensor]:
    """ImageNet VGG19 state dict (torchvision keys) from a path or ``"torchvision"``.

    ``"torchvision"`` uses torchvision's cache (``$TORCH_HOME/hub/checkpoints``) or
    downloads there; it is the only code path here that may touch the network.
    """
    if weights == TORCHVISION:
        from torchvision.models import VGG19_Weights

        return dict(VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True))
    state = _load(weights, "VGG19")
    if "features.0.weight" not in state or tuple(state["features.0.weight"].shape) != (64, 3, 3, 3):
        raise WeightsError(f"{weights}: not torchvision vgg19 weights (no 'features.0.weight' of shape 64x3x3x3)")
    return state


def _load_vgg_features(extractor: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy torchvision ``features.<i>.*`` tensors into basicsr's named layers."""
    names = extractor.names  # basicsr NAMES['vgg19'], index i == torchvision features[i]
    mapped = {}
    for name in extractor.vgg_net._modules:
        if not name.startswith("conv"):
            continue
        i = names.index(name)
        for p in ("weight", "bias"):
            key = f"features.{i}.{p}"
            if key not in state:
                raise WeightsError(f"{source}: VGG19 weights lack {key!r} (needed for {name})")
            mapped[f"{name}.{p}"] = state[key]
    try:
        extractor.vgg_net.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{source}: VGG19 weights do not fit vgg19 ({exc})") from exc


def build_perceptual_loss(
    weights: str | None,
    layer_weights: Mapping[str, float] | None = None,
    perceptual_weight: float = 1.0,
) -> nn.Module:
    """basicsr ``PerceptualLoss`` on VGG19 features (SRGAN/ESRGAN use ``conv5_4``, L1).

    Args:
        weights: VGG19 weights path or ``"torchvision"``; None keeps random features,
            which only :func:`pipeline.sr.train` allows under ``force_perceptual``.
    """
    import_basicsr()
    from basicsr.archs import vgg_arch
    from basicsr.losses.basic_loss import PerceptualLoss
    from torchvision.models import vgg19

    state = vgg19_state(weights) if weights is not None else None
    offline = SimpleNamespace(vgg19=lambda **_: vgg19(weights=None))
    missing_file = os.path.join(os.devnull, "no-vgg19.pth")  # never exists
    with mock.patch.object(vgg_arch, "vgg", offline), mock.patch.object(vgg_arch, "VGG_PRETRAIN_PATH", missing_file):
        loss = PerceptualLoss(
            layer_weights=dict(layer_weights or {"conv5_4": 1.0}),
            vgg_type="vgg19",
            use_input_norm=True,
            range_norm=False,
            perceptual_weight=perceptual_weight,
            style_weight=0.0,
            criterion="l1",
        )
    if state is not None:
        _load_vgg_features(loss.vgg, state, str(weights))
    else:
        log.warning("PerceptualLoss uses a RANDOMLY initialised VGG19 (force_perceptual): not the SRGAN content loss")
    return loss

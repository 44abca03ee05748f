"""Backbone initialisation: ImageNet VGG16 from torchvision, or random with a warning.

Conv layers map 1:1 from torchvision's ``vgg16`` ``features.<i>.*`` — or, for a
``batch_norm`` trunk, from ``vgg16_bn`` (conv and BatchNorm weights and running
statistics; the BN after fc6/fc7 is new and keeps its identity init).  fc6/fc7 are
converted from the classifier as in the SSD paper (§3 "Base network", after
DeepLab-LargeFOV): fc6 (4096 × 512·7·7) is reshaped to a 7×7 conv and decimated
to 1024 output channels (every 4th) and 3×3 taps (every 3rd: rows/cols 0, 3, 6) —
with dilation 6 it spans the same 13-px field as the dilated original; fc7 (4096 ×
4096) is decimated to 1024 × 1024 (every 4th row and column).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from pipeline.detector.backbone import VGG16Trunk
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

DOWNLOAD = "download"


class WeightsError(PipelineError, ValueError):
    """A backbone state dict is missing, unreadable or does not fit VGG16."""


def read_vgg16_state_dict(source: str | os.PathLike[str], batch_norm: bool = False) -> dict[str, Tensor]:
    """Load a torchvision VGG16 (``batch_norm``: VGG16-BN) state dict from a file path,
    or ``"download"`` the ImageNet one (needs internet)."""
    if str(source) == DOWNLOAD:
        from torchvision.models import VGG16_BN_Weights, VGG16_Weights

        weights = VGG16_BN_Weights.IMAGENET1K_V1 if batch_norm else VGG16_Weights.IMAGENET1K_V1
        return weights.get_state_dict(progress=True)
    path = Path(source)
    if not path.is_file():
        raise WeightsError(f"backbone weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the same user error
        raise WeightsError(f"{path}: not a readable torch state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def _decimate_fc(state: dict[str, Tensor], trunk: VGG16Trunk, where: str) -> dict[str, Tensor]:
    """fc6/fc7 conv weights decimated from classifier.0/.3 (biases only where the convs have
    them: with BN they are bias-free, the BN's shift replaces the bias)."""
    fc6_w, fc6_b = state["classifier.0.weight"], state["classifier.0.bias"]
    fc7_w, fc7_b = state["classifier.3.weight"], state["classifier.3.bias"]
    out6, in6 = trunk.fc6.weight.shape[:2]
    step6 = fc6_w.shape[0] // out6
    if step6 * out6 != fc6_w.shape[0] or fc6_w[0].numel() != in6 * 49:
        raise WeightsError(f"{where}: classifier.0 {tuple(fc6_w.shape)} cannot be decimated to fc6")
    w6 = fc6_w.view(fc6_w.shape[0], in6, 7, 7)
    mapped = {
        "fc6.weight": w6[::step6, :, ::3, ::3].contiguous(),
        "fc7.weight": fc7_w[::step6, ::step6].reshape(trunk.fc7.weight.shape).contiguous(),
    }
    if trunk.fc6.bias is not None:
        mapped["fc6.bias"] = fc6_b[::step6].contiguous()
    if trunk.fc7.bias is not None:
        mapped["fc7.bias"] = fc7_b[::step6].contiguous()
    return mapped


def _is_bn_layout(state: dict[str, Tensor]) -> bool:
    """torchvision ``vgg16_bn`` has a BatchNorm at ``features.1``; ``vgg16`` a ReLU there."""
    return "features.1.running_mean" in state


def load_vgg16_weights(trunk: VGG16Trunk, source: str | os.PathLike[str]) -> None:
    """Copy ImageNet VGG16 (VGG16-BN for a ``batch_norm`` trunk) weights into ``trunk``
    (``features.*`` and decimated fc6/fc7).

    Raises:
        WeightsError: naming the file when keys are missing, the layout (plain vs BN) is
            the other one, or shapes do not fit (e.g. a width multiplier other than 1).
    """
    state = read_vgg16_state_dict(source, trunk.batch_norm)
    where = str(source)
    want, got = ("vgg16_bn", "vgg16") if trunk.batch_norm else ("vgg16", "vgg16_bn")
    if "features.0.weight" in state and _is_bn_layout(state) != trunk.batch_norm:
        raise WeightsError(
            f"{where}: a torchvision {got} state dict, but model.batch_norm={trunk.batch_norm} needs {want}"
        )
    own = trunk.state_dict()
    mapped: dict[str, Tensor] = {}
    for key, value in own.items():
        if not key.startswith("features."):
            continue
        if key not in state:
            if key.endswith("num_batches_tracked"):  # absent from older torchvision files
                continue
            raise WeightsError(f"{where}: missing key {key!r} (is it a torchvision {want} state dict?)")
        if state[key].shape != value.shape:
            raise WeightsError(
                f"{where}: {key} has shape {tuple(state[key].shape)}, model needs {tuple(value.shape)} "
                "(pretrained VGG16 needs model.width = 1.0)"
            )
        mapped[key] = state[key]
    if all(k in state for k in ("classifier.0.weight", "classifier.3.weight")):
        mapped.update(_decimate_fc(state, trunk, where))
    else:
        log.warning("%s has no classifier weights: fc6/fc7 stay randomly initialised", where)
    missing, unexpected = trunk.load_state_dict(mapped, strict=False)
    # Left at their init: the BN after fc6/fc7 (not in VGG), fc6/fc7 without a classifier,
    # num_batches_tracked counters an old file lacks.
    left = [k for k in missing if not k.startswith(("bn6.", "bn7.", "fc6.", "fc7.")) and "num_batches" not in k]
    assert not unexpected and not left, (unexpected, left)
    log.info("loaded VGG16 backbone weights from %s (%d tensors)", where, len(mapped))


def init_random(module: nn.Module, backbone: bool) -> None:
    """SSD-style random init: Kaiming (fan-out, ReLU) for the VGG trunk, as torchvision's VGG;
    Xavier-uniform with zero bias for the layers SSD adds (extras, fusion modules)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if backbone:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

"""Run a detector over a set directory: resize, batch, forward, decode, post-process, rescale.

SSD warps every image to S×S (no aspect preservation, as in Liu et al. 2016), so
normalised output boxes map back to an image's own pixels by its width/height.
On CUDA the forward runs under bf16 autocast with channels_last inputs; decode and
post-processing run in float32.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.data.images import read_image
from pipeline.data.schema import ImageRecord, SchemaError, images_dir, read_records
from pipeline.paths import inside
from pipeline.postprocess import Detections, PostprocessConfig, postprocess
from pipeline.runstate import CheckpointError


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class SetImages(Dataset):
    """Images of ``records`` resized to ``size``×``size`` as uint8 (3, S, S) tensors.

    Every ``file_name`` is checked up front to stay inside the set's ``images/`` (ContainmentError).
    """

    def __init__(self, set_dir: Path, records: list[ImageRecord], size: int) -> None:
        self.paths = [inside(images_dir(set_dir), r.file_name) for r in records]
        self.records, self.size = records, size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Tensor:
        img = read_image(self.paths[i])
        img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def load_split(set_dir: str | os.PathLike[str], split: str) -> tuple[list[ImageRecord], list[str]]:
    """Records of ``split`` in ``set_dir`` and its classes; clear errors for a missing or empty set."""
    set_dir = Path(set_dir)
    if not set_dir.is_dir():
        raise FileNotFoundError(f"evaluation set not found: {set_dir}")
    records, classes = read_records(set_dir, split)
    if not records:
        raise ValueError(f"{set_dir}: no images in split {split!r}")
    return records, classes


@torch.inference_mode()
def predict_set_multi(
    model: nn.Module,
    set_dir: str | os.PathLike[str],
    post_cfgs: Mapping[str, PostprocessConfig],
    split: str = "test",
    batch_size: int = 8,
    device: str | torch.device = "auto",
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, dict[str, Detections]]:
    """One forward pass per batch, every post-processing method on its output.

    Returns:
        ``{method: {image_id: Detections}}`` with boxes in the set's pixel frame, on CPU.
    """
    records, classes = load_split(set_dir, split)
    if getattr(model, "num_classes", len(classes)) != len(classes):
        raise ValueError(
            f"{set_dir}: model has {model.num_classes} classes, the set has {len(classes)} {classes}"
        )
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    model = model.eval().to(dev)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    size = int(model.config.input_size)
    loader = DataLoader(
        SetImages(Path(set_dir), records, size),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=cuda,
    )
    out: dict[str, dict[str, Detections]] = {name: {} for name in post_cfgs}
    start = 0
    for images in tqdm(loader, desc=f"infer {Path(set_dir).name}", unit="batch", disable=not progress):
        batch = records[start : start + images.shape[0]]
        start += images.shape[0]
        images = images.to(dev, non_blocking=True)
        if cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            cls_logits, box_deltas = model(images)
        boxes, scores = model.decode(cls_logits.float(), box_deltas.float())
        scale = torch.tensor(
            [[r.width, r.height, r.width, r.height] for r in batch], dtype=torch.float32, device=dev
        )
        boxes = boxes * scale[:, None, :]  # normalised -> this set's pixels
        for name, cfg in post_cfgs.items():
            for r, d in zip(batch, postprocess(boxes, scores, cfg), strict=False):
                out[name][r.image_id] = d.to("cpu")
    return out


def predict_set(
    model: nn.Module,
    set_dir: str | os.PathLike[str],
    split: str = "test",
    batch_size: int = 8,
    device: str | torch.device = "auto",
    post_cfg: PostprocessConfig | None = None,
    num_workers: int = 0,
) -> dict[str, Detections]:
    """``{image_id: Detections}`` (set pixel coords) for one post-processing config."""
    cfg = post_cfg or PostprocessConfig()
    return predict_set_multi(model, set_dir, {"_": cfg}, split, batch_size, device, num_workers)["_"]


def load_model_for_eval(checkpoint: str | os.PathLike[str], model_cfg, classes: int | list[str]) -> nn.Module:  # noqa: ANN001
    """Build the *configured* detector (params ``model``) and load ``checkpoint`` into it.

    A checkpoint trained for another variant/config raises
    :class:`pipeline.detector.checkpoint.CheckpointMismatchError` naming both sides,
    rather than silently evaluating a different model than params.yaml says.  Given the
    set's class names, the checkpoint's recorded names must equal them in order
    (:func:`check_class_names`).
    """
    from pipeline.detector.checkpoint import load_weights_into
    from pipeline.detector.model import build_detector

    num_classes = classes if isinstance(classes, int) else len(classes)
    model = build_detector(model_cfg, num_classes, init_backbone=False)
    extra = load_weights_into(model, checkpoint)
    if not isinstance(classes, int):
        check_class_names(extra.get("classes"), classes, f"{checkpoint}")
    return model.eval()


def check_evaluation_inputs(checkpoint: str | os.PathLike[str], sets: Mapping[str, str | os.PathLike[str]],
                            reference: str | os.PathLike[str], model_cfg) -> None:  # noqa: ANN001
    """Fail fast, before any flow run starts, on what would stop the evaluation later.

    Every set and the reference must hold a readable annotation table with the same class
    list, and the checkpoint must load into the configured model with those class names.
    """
    classes = read_records(reference)[1]
    for name, set_dir in sets.items():
        if not Path(set_dir).is_dir():
            raise SchemaError(f"evaluation set {name!r} not found: {set_dir}")
        theirs = read_records(set_dir)[1]
        if theirs != classes:
            raise SchemaError(f"evaluation set {name!r} ({set_dir}) has classes {theirs}, "
                              f"the reference {reference} has {classes}")
    if not Path(checkpoint).is_file():
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    load_model_for_eval(checkpoint, model_cfg, classes)


def check_class_names(trained: list[str] | None, evaluated: list[str], where: str) -> None:
    """Refuse to score a model whose class list differs from the set's, in names or order.

    Only the class *count* used to be compared, so a set with the same classes in another
    order was scored with every label swapped.  A checkpoint that records no names
    (written by hand, older format) is refused too: its labels cannot be checked.
    """
    from pipeline.detector.checkpoint import CheckpointMismatchError

    if trained is None:
        raise CheckpointMismatchError(f"{where}: the checkpoint records no class names; cannot check them "
                                      f"against the set's {len(evaluated)} classes")
    trained = list(trained)
    if trained == list(evaluated):
        return
    if len(trained) != len(evaluated):
        raise CheckpointMismatchError(f"{where}: trained on {len(trained)} classes, the set has {len(evaluated)}")
    i = next(i for i, (a, b) in enumerate(zip(trained, evaluated, strict=True)) if a != b)
    raise CheckpointMismatchError(f"{where}: class {i} is {trained[i]!r} in the checkpoint but {evaluated[i]!r} in "
                                  "the set (same names in another order, or other classes)")

"""Run a detector over a set directory or any images: resize, batch, forward, decode, post-process, rescale.

SSD warps every image to S×S (no aspect preservation, as in Liu et al. 2016), so
normalised output boxes map back to an image's own pixels by its width/height.
On CUDA the forward runs under bf16 autocast with channels_last inputs; decode and
post-processing run in float32.  Large images can be detected sliced
(:mod:`pipeline.slicing`): their windows are batched like images, across image
boundaries, and merged per image.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from pipeline.slicing import SliceConfig, crop_windows, merge_tiles, to_image_frame, window_frames, windows


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


def prepare_model(model: nn.Module, device: str | torch.device) -> tuple[nn.Module, torch.device]:
    """Eval mode on the resolved device (channels_last on CUDA)."""
    dev = resolve_device(device)
    model = model.eval().to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model, dev


@torch.inference_mode()
def detect_batch(
    model: nn.Module, images: Tensor, frames: Tensor, post_cfgs: Mapping[str, PostprocessConfig], dev: torch.device
) -> dict[str, list[Detections]]:
    """One forward pass over (N, 3, S, S) uint8 ``images``, every post-processing method on its output.

    ``frames`` (N, 4) ``[x0, y0, w, h]`` place each input in its image's pixels (a whole
    image: ``[0, 0, W, H]``; a tile: its window), see :func:`pipeline.slicing.to_image_frame`.

    Returns:
        ``{method: [Detections per input]}`` in image pixels, on CPU.
    """
    cuda = dev.type == "cuda"
    images = images.to(dev, non_blocking=True)
    if cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
        cls_logits, box_deltas = model(images)
    boxes, scores = model.decode(cls_logits.float(), box_deltas.float())
    boxes = to_image_frame(boxes, frames)  # normalised -> image pixels
    return {name: [d.to("cpu") for d in postprocess(boxes, scores, cfg)] for name, cfg in post_cfgs.items()}


@dataclass
class _Pending:
    """One image whose windows are (partly) queued: detections collected per method."""

    key: Any
    windows_left: int
    dets: dict[str, list[Detections]]


def detect_images(
    model: nn.Module,
    images: Iterable[tuple[Any, np.ndarray]],
    post_cfgs: Mapping[str, PostprocessConfig],
    batch_size: int = 8,
    device: str | torch.device = "auto",
    slice_cfg: SliceConfig | None = None,
) -> Iterator[tuple[Any, dict[str, Detections]]]:
    """Detect in ``(key, (H, W, 3) uint8 image)`` pairs, yielding ``(key, {method: Detections})`` in order.

    Without ``slice_cfg`` each image is one input (warped to S x S, as in evaluation);
    with it, each image's windows (:func:`pipeline.slicing.windows`) are inputs.  Inputs
    from consecutive images share batches of ``batch_size``; an image's window
    detections are merged by :func:`pipeline.slicing.merge_tiles`.  Boxes are in the
    image's pixels, on CPU.
    """
    model, dev = prepare_model(model, device)
    size = int(model.config.input_size)
    queue: deque[tuple[Tensor, Tensor, _Pending]] = deque()
    pending: deque[_Pending] = deque()

    def flush(n: int) -> None:
        batch = [queue.popleft() for _ in range(min(n, len(queue)))]
        out = detect_batch(model, torch.stack([t for t, _, _ in batch]), torch.stack([f for _, f, _ in batch]),
                           post_cfgs, dev)
        for i, (_, _, owner) in enumerate(batch):
            for name in post_cfgs:
                owner.dets[name].append(out[name][i])
            owner.windows_left -= 1

    def finished() -> Iterator[tuple[Any, dict[str, Detections]]]:
        while pending and pending[0].windows_left == 0:
            p = pending.popleft()
            if slice_cfg is None:
                yield p.key, {name: d[0] for name, d in p.dets.items()}
            else:
                yield p.key, {name: merge_tiles(p.dets[name], cfg, slice_cfg, model.num_classes)
                              for name, cfg in post_cfgs.items()}

    for key, image in images:
        h, w = image.shape[:2]
        wins = [(0, 0, w, h)] if slice_cfg is None else windows(
            w, h, slice_cfg.size, slice_cfg.overlap, slice_cfg.full_image)
        owner = _Pending(key, len(wins), {name: [] for name in post_cfgs})
        pending.append(owner)
        queue.extend(zip(crop_windows(image, wins, size), window_frames(wins), [owner] * len(wins), strict=True))
        while len(queue) >= batch_size:
            flush(batch_size)
            yield from finished()
    while queue:
        flush(batch_size)
    yield from finished()


def predict_set_multi(
    model: nn.Module,
    set_dir: str | os.PathLike[str],
    post_cfgs: Mapping[str, PostprocessConfig],
    split: str = "test",
    batch_size: int = 8,
    device: str | torch.device = "auto",
    num_workers: int = 0,
    progress: bool = True,
    slice_cfg: SliceConfig | None = None,
) -> dict[str, dict[str, Detections]]:
    """One forward pass per batch, every post-processing method on its output.

    With ``slice_cfg`` every image is detected sliced (:func:`detect_images`), decoded
    in this process; without it a DataLoader (``num_workers``) decodes and resizes.

    Returns:
        ``{method: {image_id: Detections}}`` with boxes in the set's pixel frame, on CPU.
    """
    records, classes = load_split(set_dir, split)
    if getattr(model, "num_classes", len(classes)) != len(classes):
        raise ValueError(
            f"{set_dir}: model has {model.num_classes} classes, the set has {len(classes)} {classes}"
        )
    out: dict[str, dict[str, Detections]] = {name: {} for name in post_cfgs}
    desc = f"infer {Path(set_dir).name}"
    if slice_cfg is not None:
        paths = SetImages(Path(set_dir), records, 0).paths
        pairs = ((r.image_id, read_image(p)) for r, p in zip(records, paths, strict=True))
        for image_id, dets in tqdm(detect_images(model, pairs, post_cfgs, batch_size, device, slice_cfg),
                                   desc=desc, total=len(records), unit="img", disable=not progress):
            for name, d in dets.items():
                out[name][image_id] = d
        return out
    model, dev = prepare_model(model, device)
    size = int(model.config.input_size)
    loader = DataLoader(
        SetImages(Path(set_dir), records, size),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
    )
    start = 0
    for images in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        batch = records[start : start + images.shape[0]]
        start += images.shape[0]
        frames = torch.tensor([[0, 0, r.width, r.height] for r in batch], dtype=torch.float32)
        for name, dets in detect_batch(model, images, frames, post_cfgs, dev).items():
            for r, d in zip(batch, dets, strict=True):
                out[name][r.image_id] = d
    return out


def predict_set(
    model: nn.Module,
    set_dir: str | os.PathLike[str],
    split: str = "test",
    batch_size: int = 8,
    device: str | torch.device = "auto",
    post_cfg: PostprocessConfig | None = None,
    num_workers: int = 0,
    slice_cfg: SliceConfig | None = None,
) -> dict[str, Detections]:
    """``{image_id: Detections}`` (set pixel coords) for one post-processing config."""
    cfg = post_cfg or PostprocessConfig()
    return predict_set_multi(model, set_dir, {"_": cfg}, split, batch_size, device, num_workers,
                             slice_cfg=slice_cfg)["_"]


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

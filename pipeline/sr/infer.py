"""Tiled, batched super-resolution inference with blended overlaps (memory bounded).

An LR image is cut into ``tile x tile`` LR tiles whose starts step by
``tile - overlap`` (the last tile is aligned to the image end).  Tiles of equal shape,
from one or consecutive images, are run through the network ``batch_size`` at a time.
Each tile's SR output is weighted by a separable profile that, on every side shared
with a neighbour, is 0 for a guard band of ``overlap/4`` LR pixels, then ramps linearly
to 1 across the rest of the overlap; overlapping outputs are averaged with these
weights.  Tile borders (where zero padding makes a tile differ from the whole-image
result) therefore never contribute, so with ``overlap/4`` at least the network's
receptive-field radius (7 LR px for 2 blocks, 2 px more per extra block) the tiled
result equals the untiled one up to float rounding; below it, the ramp hides seams.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)``; the last one ends at ``length``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def blend_profile(n_hr: int, scale: int, overlap: int, left: bool, right: bool) -> torch.Tensor:
    """1-D weights (n_hr,) of a tile's SR output along one axis (see module docstring)."""
    w = torch.ones(n_hr, dtype=torch.float32)
    o_hr = scale * overlap
    if o_hr == 0:
        return w
    guard = o_hr // 4
    ramp = o_hr - 2 * guard
    x = torch.arange(n_hr, dtype=torch.float32)
    if left:
        w = torch.minimum(w, ((x - guard + 1) / (ramp + 1)).clamp(0, 1))
    if right:
        w = torch.minimum(w, ((n_hr - x - guard) / (ramp + 1)).clamp(0, 1))
    return w


@dataclass
class _Job:
    image: int
    y: int
    x: int
    h: int
    w: int
    weight: torch.Tensor  # (scale*h, scale*w)


class _Canvas:
    """Weighted sum of tile outputs of one image (CPU, float32)."""

    def __init__(self, h: int, w: int, scale: int, n_tiles: int) -> None:
        self.acc = torch.zeros(3, scale * h, scale * w)
        self.wsum = torch.zeros(1, scale * h, scale * w)
        self.left = n_tiles

    def result(self) -> torch.Tensor:
        if not bool((self.wsum > 0).all()):
            raise RuntimeError("tiling left SR pixels without weight (tile/overlap too small?)")
        return self.acc / self.wsum


def _jobs(index: int, h: int, w: int, tile: int, overlap: int, scale: int) -> list[_Job]:
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    jobs = []
    for i, y in enumerate(ys):
        wy = blend_profile(scale * th, scale, overlap, left=i > 0, right=i < len(ys) - 1)
        for j, x in enumerate(xs):
            wx = blend_profile(scale * tw, scale, overlap, left=j > 0, right=j < len(xs) - 1)
            jobs.append(_Job(index, y, x, th, tw, wy[:, None] * wx[None, :]))
    return jobs


@torch.no_grad()
def super_resolve(
    model: nn.Module,
    images: Iterable[np.ndarray],
    tile: int = 128,
    overlap: int = 32,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | None = None,
) -> Iterator[torch.Tensor]:
    """Super-resolve LR images, yielding one (3, s*h, s*w) float32 CPU tensor in [0, 1] each.

    Args:
        model: an SR network with an ``upscale`` attribute (basicsr MSRResNet).
        images: (h, w, 3) uint8 RGB arrays, consumed lazily.
        tile, overlap: tile side and overlap in LR pixels (``0 <= overlap < tile``).
        device: default CUDA when available, else CPU.
        amp_dtype: autocast dtype on CUDA (e.g. ``torch.bfloat16``); ignored on CPU.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    scale = int(model.upscale)
    model = model.to(device).eval()
    use_amp = amp_dtype is not None and device.type == "cuda"
    pending: deque[tuple[_Job, torch.Tensor]] = deque()
    canvases: dict[int, _Canvas] = {}
    next_out = 0

    def flush() -> None:
        batch = [pending.popleft() for _ in range(len(pending))]
        x = torch.stack([t for _, t in batch]).to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=amp_dtype, enabled=use_amp):
            y = model(x).float().cpu()
        for (job, _), out in zip(batch, y, strict=True):
            c = canvases[job.image]
            ys, xs = slice(scale * job.y, scale * (job.y + job.h)), slice(scale * job.x, scale * (job.x + job.w))
            c.acc[:, ys, xs] += out * job.weight
            c.wsum[:, ys, xs] += job.weight
            c.left -= 1

    def finished() -> Iterator[torch.Tensor]:
        nonlocal next_out
        while next_out in canvases and canvases[next_out].left == 0:
            yield canvases.pop(next_out).result().clamp_(0, 1)
            next_out += 1

    for index, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image {index}: expected (h, w, 3) uint8, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        lr = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255)
        jobs = _jobs(index, h, w, tile, overlap, scale)
        canvases[index] = _Canvas(h, w, scale, len(jobs))
        for job in jobs:
            patch = lr[:, job.y:job.y + job.h, job.x:job.x + job.w]
            if pending and (pending[0][1].shape != patch.shape or len(pending) >= batch_size):
                flush()
                yield from finished()
            pending.append((job, patch))
    if pending:
        flush()
    yield from finished()


def to_uint8(sr: torch.Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8, resized bicubic to ``size`` (w, h) if given.

    SR output is ``scale * LR`` size; when the HR image is not exactly that (LR sizes are
    rounded), this bicubic resize by < ``scale/2`` pixels makes it the HR size, so HR boxes
    apply unchanged.
    """
    arr = sr.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    if size is not None and (arr.shape[1], arr.shape[0]) != tuple(size):
        arr = np.asarray(Image.fromarray(arr).resize(tuple(size), Image.Resampling.BICUBIC))
    return arr


def bicubic_upscale(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The baseline: PIL bicubic upscaling of an (h, w, 3) uint8 image to ``size`` (w, h)."""
    return np.asarray(Image.fromarray(lr).resize(tuple(size), Image.Resampling.BICUBIC))

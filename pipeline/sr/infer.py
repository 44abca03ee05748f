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

Memory: tiles are processed row by row and blended over a band of ``scale * tile``
output rows; rows no later tile touches are emitted as uint8 :class:`Band` s, so a
caller can encode and score an image of any height in memory that grows with the tile
and the width (see ``bench/bench_sr_memory.py``).  :func:`resize_bands` resizes such a
band stream (to the exact HR size, or LR to HR for the bicubic baseline) the same way.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Band:
    """Finished output rows ``[y, y + len(rows))`` of input image ``image``.

    ``rows`` is (n, W, 3) uint8; ``height`` is that image's output height, so the band
    with ``y + len(rows) == height`` is its last.
    """

    image: int
    y: int
    rows: np.ndarray
    height: int

    @property
    def last(self) -> bool:
        return self.y + len(self.rows) == self.height


class _Assembler:
    """Blends one image's tile outputs over a band of ``scale * tile`` output rows.

    Tiles arrive in row-major order; once every tile of a tile row is in, the output rows
    above the next tile row are final: they are emitted as uint8 and the band moves down.
    Memory is ``16 * scale * tile * W`` bytes (float32 sums and weights), not the image.
    """

    def __init__(self, index: int, lr: np.ndarray, tile: int, overlap: int, scale: int) -> None:
        h, w = lr.shape[:2]
        self.index, self.lr, self.scale = index, lr, scale
        self.ys, self.xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
        self.th, self.tw = min(tile, h), min(tile, w)
        last_y, last_x = len(self.ys) - 1, len(self.xs) - 1
        self.wy = [blend_profile(scale * self.th, scale, overlap, i > 0, i < last_y) for i in range(len(self.ys))]
        self.wx = [blend_profile(scale * self.tw, scale, overlap, j > 0, j < last_x) for j in range(len(self.xs))]
        self.height = scale * h
        self.acc = torch.zeros(3, scale * self.th, scale * w)
        self.wsum = torch.zeros(1, scale * self.th, scale * w)
        self.top = 0  # output row of acc[:, 0]
        self.in_row = 0  # tiles of the current tile row received
        self.ready: deque[Band] = deque()

    def tiles(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(tile row, tile column, (3, th, tw) float LR patch in [0, 1]), row-major."""
        for i, y in enumerate(self.ys):
            for j, x in enumerate(self.xs):
                patch = torch.from_numpy(np.ascontiguousarray(self.lr[y:y + self.th, x:x + self.tw]))
                yield i, j, patch.permute(2, 0, 1).float().div_(255)

    @property
    def finished(self) -> bool:
        return self.top == self.height

    def add(self, i: int, j: int, out: torch.Tensor) -> None:
        """Blend tile (i, j)'s SR output (3, s*th, s*tw); emit rows that are final."""
        s = self.scale
        ys = slice(s * self.ys[i] - self.top, s * (self.ys[i] + self.th) - self.top)
        xs = slice(s * self.xs[j], s * (self.xs[j] + self.tw))
        weight = self.wy[i][:, None] * self.wx[j][None, :]
        self.acc[:, ys, xs] += out * weight
        self.wsum[:, ys, xs] += weight
        self.in_row += 1
        if self.in_row == len(self.xs):
            self.in_row = 0
            self._emit(s * self.ys[i + 1] if i + 1 < len(self.ys) else self.height)

    def _emit(self, end: int) -> None:
        n = end - self.top
        wsum = self.wsum[:, :n]
        if not bool((wsum > 0).all()):
            raise RuntimeError("tiling left SR pixels without weight (tile/overlap too small?)")
        sr = (self.acc[:, :n] / wsum).clamp_(0, 1)
        rows = sr.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        self.ready.append(Band(self.index, self.top, rows, self.height))
        keep = self.acc.shape[1] - n
        for buf in (self.acc, self.wsum):
            buf[:, :keep] = buf[:, n:].clone()
            buf[:, keep:] = 0
        self.top = end
        if self.finished:
            self.lr = None  # type: ignore[assignment]  # the LR image is no longer needed


@torch.no_grad()
def super_resolve_bands(
    model: nn.Module,
    images: Iterable[np.ndarray],
    tile: int = 128,
    overlap: int = 32,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | None = None,
) -> Iterator[Band]:
    """Super-resolve LR images, yielding their uint8 output as row :class:`Band` s, top to
    bottom, one image after the other.

    Peak memory grows with ``tile`` and the image width, not the image area: no full-size
    canvas exists.  Tiles of equal shape, from one or consecutive images, share a batch.

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
    pending: list[tuple[_Assembler, int, int, torch.Tensor]] = []
    order: deque[_Assembler] = deque()  # images with output still to yield, in input order

    def flush() -> None:
        x = torch.stack([t for *_, t in pending]).to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=amp_dtype, enabled=use_amp):
            y = model(x).float().cpu()
        for (asm, i, j, _), out in zip(pending, y, strict=True):
            asm.add(i, j, out)
        pending.clear()

    def drain() -> Iterator[Band]:
        while order and order[0].ready:
            yield order[0].ready.popleft()
            if order[0].finished and not order[0].ready:
                order.popleft()

    for index, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or 0 in img.shape:
            raise ValueError(f"image {index}: expected (h, w, 3) uint8, got {img.shape} {img.dtype}")
        asm = _Assembler(index, img, tile, overlap, scale)
        order.append(asm)
        for i, j, patch in asm.tiles():
            if pending and (pending[0][3].shape != patch.shape or len(pending) >= batch_size):
                flush()
                yield from drain()
            pending.append((asm, i, j, patch))
    if pending:
        flush()
    yield from drain()


def super_resolve(model: nn.Module, images: Iterable[np.ndarray], **kwargs: Any) -> Iterator[np.ndarray]:
    """Whole (s*h, s*w, 3) uint8 SR images, one per input, assembled from
    :func:`super_resolve_bands` (same keyword arguments); for images that fit in memory."""
    out = np.empty((0, 0, 3), np.uint8)
    for band in super_resolve_bands(model, images, **kwargs):
        if band.y == 0:
            out = np.empty((band.height, band.rows.shape[1], 3), np.uint8)
        out[band.y:band.y + len(band.rows)] = band.rows
        if band.last:
            yield out


def resize_bands(
    bands: Iterable[np.ndarray],
    src_size: tuple[int, int],
    size: tuple[int, int],
    rows: int = 256,
) -> Iterator[np.ndarray]:
    """PIL-bicubic resize of an image given as consecutive (n, w, 3) uint8 row bands.

    Yields row bands of the ``size`` (W, H) result (of at most ``rows`` rows when the
    height changes, else the source's bands), together equal to the
    whole-image ``Image.resize``: PIL resizes horizontally, then vertically; here each
    source band is resized horizontally as it arrives, and each output band vertically
    from the rows under its filter support (plus a margin) through PIL's ``box``, which
    makes PIL compute the same taps as for the whole image.  Only a band is held.
    """
    (w, h), (out_w, out_h) = src_size, size
    if (w, h) == (out_w, out_h):
        yield from bands
        return
    if w != out_w:
        bands = (np.asarray(Image.fromarray(b).resize((out_w, len(b)), Image.Resampling.BICUBIC)) for b in bands)
    if h == out_h:
        yield from bands
        return
    sy = h / out_h
    margin = math.ceil(2 * max(sy, 1.0)) + 2  # bicubic support (2 taps, scaled when shrinking) + rounding
    source = iter(bands)
    buf, b0 = np.empty((0, out_w, 3), np.uint8), 0  # buffered source rows [b0, b0 + len(buf))
    for r0 in range(0, out_h, rows):
        r1 = min(out_h, r0 + rows)
        lo, hi = max(0, math.floor(r0 * sy) - margin), min(h, math.ceil(r1 * sy) + margin)
        if lo > b0:
            buf, b0 = buf[lo - b0:], lo
        while b0 + len(buf) < hi:
            band = next(source, None)
            if band is None:
                raise ValueError(f"row bands end at row {b0 + len(buf)} of a {w}x{h} image")
            buf = np.concatenate([buf, band])
        box = (0.0, r0 * sy - b0, float(out_w), r1 * sy - b0)
        yield np.asarray(Image.fromarray(buf).resize((out_w, r1 - r0), Image.Resampling.BICUBIC, box=box))


def bicubic_bands(lr: np.ndarray, size: tuple[int, int], rows: int = 256) -> Iterator[np.ndarray]:
    """The baseline: PIL bicubic upscaling of an (h, w, 3) uint8 image to ``size`` (W, H), in
    row bands (the LR is fed in bands too, so its horizontal pass is never held whole)."""
    src_rows = max(1, rows * lr.shape[0] // size[1])
    bands = (lr[y:y + src_rows] for y in range(0, lr.shape[0], src_rows))
    return resize_bands(bands, (lr.shape[1], lr.shape[0]), size, rows)


def bicubic_upscale(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The baseline for images that fit in memory: PIL bicubic of (h, w, 3) uint8 to ``size`` (W, H)."""
    return np.asarray(Image.fromarray(lr).resize(tuple(size), Image.Resampling.BICUBIC))

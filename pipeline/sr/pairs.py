"""Aligned (LR, HR) image pairs of two sets and a checkpointable random patch sampler.

The LR set (``pipeline.data.degrade``) has the HR set's images and objects with
``lr_w = max(1, round_half_up(W / scale))`` (:func:`pipeline.data.degrade.lr_size`).  When ``W != scale * lr_w`` the HR image is resized
(bicubic) to ``scale * lr_w`` for training so that every LR pixel maps exactly onto a
``scale x scale`` HR block; inference does the inverse (see :mod:`pipeline.sr.infer`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.data.degrade import lr_size
from pipeline.data.images import read_image
from pipeline.data.schema import ImageRecord, images_dir, read_records
from pipeline.errors import PipelineError
from pipeline.paths import inside


class SetMismatchError(PipelineError, ValueError):
    """The LR set does not correspond image-for-image to the HR set."""


@dataclass(frozen=True)
class Pair:
    """One image in both sets."""

    hr: ImageRecord
    lr: ImageRecord
    hr_path: Path
    lr_path: Path


def match_sets(
    hr_dir: str | os.PathLike[str],
    lr_dir: str | os.PathLike[str],
    scale: int,
    splits: tuple[str, ...] | list[str] | None = None,
) -> tuple[list[Pair], list[str]]:
    """Pair the images of an HR and an LR set; checks ids, files, splits, sizes, labels.

    Returns:
        The pairs (in HR table order, restricted to ``splits``) and the class list.

    Raises:
        SetMismatchError: naming the LR table and the first disagreement.
        ContainmentError: a ``file_name`` that leaves its set's ``images/``.
    """
    hr_recs, hr_classes = read_records(hr_dir)
    lr_recs, lr_classes = read_records(lr_dir)
    where = f"{Path(lr_dir) / 'annotations.parquet'} vs {Path(hr_dir) / 'annotations.parquet'}"
    if hr_classes != lr_classes:
        raise SetMismatchError(f"{where}: class lists differ")
    lr_by_id = {(r.split, r.image_id): r for r in lr_recs}  # an image id is unique within its split only
    extra = sorted(set(lr_by_id) - {(r.split, r.image_id) for r in hr_recs})
    if extra:
        raise SetMismatchError(f"{where}: LR set has images not in the HR set, e.g. {extra[0][1]!r} ({extra[0][0]})")
    pairs = []
    for hr in hr_recs:
        lr = lr_by_id.get((hr.split, hr.image_id))
        if lr is None:
            raise SetMismatchError(f"{where}: image {hr.image_id!r} is missing from the LR set")
        if (lr.file_name, lr.split) != (hr.file_name, hr.split):
            raise SetMismatchError(f"{where}: image {hr.image_id!r} has file/split "
                                   f"{lr.file_name!r}/{lr.split!r} in LR, {hr.file_name!r}/{hr.split!r} in HR")
        want = lr_size(hr.width, hr.height, scale)
        if (lr.width, lr.height) != want:
            raise SetMismatchError(f"{where}: image {hr.image_id!r} is {lr.width}x{lr.height} in LR, "
                                   f"expected {want[0]}x{want[1]} for {hr.width}x{hr.height} HR at x{scale}")
        if len(lr) != len(hr) or not np.array_equal(lr.labels, hr.labels):
            raise SetMismatchError(f"{where}: image {hr.image_id!r} has different objects in LR and HR")
        if splits is None or hr.split in splits:
            pairs.append(Pair(hr, lr, inside(images_dir(hr_dir), hr.file_name), inside(images_dir(lr_dir), lr.file_name)))
    return pairs, hr_classes


def load_pair(pair: Pair, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode (LR (h, w, 3), HR (scale*h, scale*w, 3)) uint8; checks decoded sizes."""
    lr = read_image(pair.lr_path)
    hr = read_image(pair.hr_path)
    if (lr.shape[1], lr.shape[0]) != (pair.lr.width, pair.lr.height):
        raise SetMismatchError(f"{pair.lr_path}: image is {lr.shape[1]}x{lr.shape[0]}, "
                               f"table says {pair.lr.width}x{pair.lr.height}")
    if (hr.shape[1], hr.shape[0]) != (pair.hr.width, pair.hr.height):
        raise SetMismatchError(f"{pair.hr_path}: image is {hr.shape[1]}x{hr.shape[0]}, "
                               f"table says {pair.hr.width}x{pair.hr.height}")
    target = (scale * lr.shape[1], scale * lr.shape[0])
    if (hr.shape[1], hr.shape[0]) != target:
        hr = np.asarray(Image.fromarray(hr).resize(target, Image.Resampling.BICUBIC))
    return lr, hr


class PatchSampler:
    """Random aligned patches with flip/rot90 augmentation, reproducible and resumable.

    Each batch draws images uniformly (with replacement) from the pairs whose LR side is
    at least ``patch`` pixels, a random LR crop ``patch x patch`` and the HR crop
    ``scale*patch`` at the same place, then a random horizontal flip, vertical flip and
    transpose (the 8 dihedral transforms, as basicsr's ``augment``).  All randomness
    comes from one numpy Generator whose state is :meth:`state_dict`.

    Decoded images are kept in an LRU cache of ``max_cached`` pairs.
    """

    def __init__(self, pairs: list[Pair], patch: int, scale: int, seed: int, max_cached: int = 4096) -> None:
        self.pairs = [p for p in pairs if p.lr.width >= patch and p.lr.height >= patch]
        if not self.pairs:
            raise ValueError(f"no training image has an LR side >= patch_size {patch} "
                             f"(of {len(pairs)} training images)")
        self.patch, self.scale, self.max_cached = patch, scale, max_cached
        self.rng = np.random.default_rng(seed)
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _get(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        item = load_pair(self.pairs[i], self.scale)
        self._cache[i] = item
        if len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return item

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(LR (B, 3, p, p), HR (B, 3, s*p, s*p)) float32 in [0, 1]."""
        p, s = self.patch, self.scale
        lrs, hrs = [], []
        for _ in range(batch):
            i = int(self.rng.integers(len(self.pairs)))
            lr, hr = self._get(i)
            y = int(self.rng.integers(lr.shape[0] - p + 1))
            x = int(self.rng.integers(lr.shape[1] - p + 1))
            lp = lr[y:y + p, x:x + p]
            hp = hr[s * y:s * (y + p), s * x:s * (x + p)]
            hflip, vflip, transpose = self.rng.random(3) < 0.5
            if hflip:
                lp, hp = lp[:, ::-1], hp[:, ::-1]
            if vflip:
                lp, hp = lp[::-1], hp[::-1]
            if transpose:
                lp, hp = lp.transpose(1, 0, 2), hp.transpose(1, 0, 2)
            lrs.append(lp.transpose(2, 0, 1))
            hrs.append(hp.transpose(2, 0, 1))
        # astype keeps the (transposed) memory order of a 1-image stack: force C order
        return (np.ascontiguousarray(np.stack(lrs), dtype=np.float32) / 255.0,
                np.ascontiguousarray(np.stack(hrs), dtype=np.float32) / 255.0)

    def state_dict(self) -> dict[str, Any]:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["bit_generator"]

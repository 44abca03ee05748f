"""Detection input pipeline: a Dataset over any set of the table schema, padded
collate, a resumable (distributed) sampler and the DataLoader recipe.

Reproducibility does not depend on worker scheduling: the sampler yields
``(epoch, index)`` keys and the dataset seeds the augmentation of each sample from
``(seed, epoch, index)``, so a sample is the same whether it is decoded by worker 0,
worker 3 or the main process, and a resumed run sees exactly the samples the
interrupted one would have seen.

Images travel as uint8 (4x less than float32 through pinned memory and the bus);
:func:`to_device` converts them to float [0, 1] on the device.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from pipeline.data.images import ImageError, read_image
from pipeline.data.schema import ImageRecord, images_dir, read_records
from pipeline.detector.transforms import Compose
from pipeline.paths import inside

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class DetectionDataset(Dataset):
    """Images + targets of one split of a set directory (pipeline.data.schema layout).

    Args:
        set_dir: set directory (``images/`` + ``annotations.parquet``); HR, LR, SR or
            copy-paste sets alike.
        split: "train" | "test" | None (all images).
        transform: a :mod:`pipeline.detector.transforms` pipeline ending in a resize.
        seed: base seed of the per-sample augmentation generator.
        include_difficult: keep VOC "difficult" objects as targets (default: dropped,
            as in SSD/VOC practice).
        include_crowd: keep COCO ``iscrowd`` regions as targets (default: dropped).

    ``dataset[i]`` or ``dataset[(epoch, i)]`` ->
    ``(image (S, S, 3) uint8 tensor, boxes (n, 4) float32 xyxy in [0, 1], labels (n,) int64 1-based)``.
    """

    def __init__(
        self,
        set_dir: str | os.PathLike[str],
        split: str | None,
        transform: Compose,
        seed: int = 0,
        include_difficult: bool = False,
        include_crowd: bool = False,
    ) -> None:
        self.set_dir = Path(set_dir)
        records, self.classes = read_records(self.set_dir, split)
        if not records:
            raise ValueError(f"{self.set_dir}: no images in split {split!r}")
        self.records: list[ImageRecord] = records
        self.transform = transform
        self.seed = int(seed)
        self.include_difficult = include_difficult
        self.include_crowd = include_crowd
        images = images_dir(self.set_dir)
        self._paths = [inside(images, r.file_name) for r in records]  # ContainmentError before any work

    def __len__(self) -> int:
        return len(self.records)

    def targets(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Training targets of record ``index``: pixel boxes and 0-based labels (filtered)."""
        r = self.records[index]
        keep = np.ones(len(r), bool)
        if not self.include_difficult:
            keep &= ~r.difficult
        if not self.include_crowd:
            keep &= ~r.iscrowd
        return r.boxes[keep].astype(np.float32), r.labels[keep].astype(np.int64)

    def __getitem__(self, key: int | tuple[int, int]) -> Batch:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        r = self.records[index]
        path = self._paths[index]
        image = read_image(path)
        if image.shape[:2] != (r.height, r.width):
            raise ImageError(
                f"{path}: decoded size {image.shape[1]}x{image.shape[0]} != table size {r.width}x{r.height}"
            )
        boxes, labels = self.targets(index)
        rng = np.random.default_rng((self.seed, int(epoch), int(index)))
        image, boxes, labels = self.transform(image, boxes, labels, rng)
        return torch.from_numpy(image), torch.from_numpy(boxes).reshape(-1, 4), torch.from_numpy(labels + 1)


def collate(batch: Sequence[Batch]) -> Batch:
    """Stack images and pad targets.

    Returns:
        images (N, 3, S, S) uint8 (convert with :func:`to_device`),
        gt_boxes (N, G, 4) float32 xyxy in [0, 1] (zeros where padded),
        gt_labels (N, G) int64 in 1..C, 0 = padding; G = max(1, most objects in the batch).
    """
    images = torch.stack([b[0] for b in batch]).permute(0, 3, 1, 2).contiguous()
    g = max(1, max(int(b[1].shape[0]) for b in batch))
    boxes = torch.zeros((len(batch), g, 4), dtype=torch.float32)
    labels = torch.zeros((len(batch), g), dtype=torch.int64)
    for i, (_, b, lab) in enumerate(batch):
        boxes[i, : b.shape[0]] = b
        labels[i, : lab.shape[0]] = lab
    return images, boxes, labels


def to_device(batch: Batch, device: torch.device, channels_last: bool = False) -> Batch:
    """Move a collated batch (non-blocking from pinned memory) and make images float [0, 1] there."""
    images, boxes, labels = (t.to(device, non_blocking=True) for t in batch)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images.float().div_(255.0), boxes, labels


class ResumableSampler(DistributedSampler):
    """torch's DistributedSampler (per-epoch permutation seeded by ``seed + epoch``,
    rank-strided shards) that yields ``(epoch, index)`` keys and can start mid-epoch.

    ``set_epoch(epoch, start=k)`` skips the first ``k`` samples of this rank's shard
    (the ones an interrupted run already consumed).  Works with ``num_replicas=1``
    without a process group.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.start :]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.start


def _worker_init(_: int) -> None:
    cv2.setNumThreads(0)  # workers are the parallelism; OpenCV's own pool would oversubscribe
    torch.set_num_threads(1)
    drop_inherited_thread_exit_hooks()


def drop_inherited_thread_exit_hooks() -> None:
    """Forget the thread-exit hooks a forked worker inherits from the training process.

    Libraries register hooks that run when the interpreter stops its threads
    (``threading._register_atexit``), e.g. Prefect 3's log and event services, and reset
    their state in a forked child; the hooks then fail when the worker exits
    (``assert self._done_event is not None``), the worker ends with code 1 and the training
    process reports "DataLoader worker exited unexpectedly" (issue 15 item 7).  A worker
    owns none of the parent's threads, so none of those hooks is its to run.
    """
    hooks = getattr(threading, "_threading_atexits", None)  # CPython 3.9+; absent: nothing to drop
    if isinstance(hooks, list):
        hooks.clear()


def auto_num_workers(world_size: int = 1) -> int:
    """Cores available to this process divided among local ranks, leaving one for the main loop."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, world_size) - 1)


def make_loader(
    dataset: DetectionDataset,
    sampler: ResumableSampler,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    seed: int = 0,
    prefetch_factor: int = 4,
) -> DataLoader:
    """DataLoader recipe: batches of ``batch_size`` (last partial one dropped), augmentation
    in ``num_workers`` persistent workers with prefetch, pinned memory for CUDA.

    A dedicated generator keeps DataLoader's base-seed draw off the global torch RNG.
    """
    kwargs = {}
    if num_workers > 0:
        kwargs = dict(persistent_workers=True, prefetch_factor=prefetch_factor, worker_init_fn=_worker_init)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )

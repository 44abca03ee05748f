"""Where a variant's positive default boxes land: per prediction level, by object size.

The matcher (IoU with per-level thresholds, or ATSS) decides which default boxes learn
each object.  This counts them on a training set as training sees it (its augmentation
recipe, seeded as training seeds it), with the model's own ``match``, without training:

    python -m pipeline.detector.assignment --set data/sets/hr \\
        --variants ssd shallow atss+fem shallow+fem+atss [--epochs 2] [--json out.json]

Objects are grouped by the side of their box in the network input (``sqrt(w·h)`` px at
``model.input_size``); for each group it reports the share of its positives on each level,
positives per object, and the share of objects with no positive at all (possible with
ATSS only: the IoU matcher forces each object's best box).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

from pipeline.atomic import write_json
from pipeline.config import load_params, section
from pipeline.detector.data import DetectionDataset, collate
from pipeline.detector.matching import valid_gt
from pipeline.detector.model import SSD, ModelConfig, build_detector
from pipeline.detector.train import TrainConfig
from pipeline.detector.transforms import RECIPES, build_transform

SIZE_EDGES = (16.0, 32.0, 64.0)  # px in the network input: side = sqrt(box area)


def size_labels(edges: Sequence[float] = SIZE_EDGES) -> list[str]:
    """``['<16', '16-32', '32-64', '>=64']`` for the default edges."""
    e = [f"{v:g}" for v in edges]
    return [f"<{e[0]}", *(f"{a}-{b}" for a, b in pairwise(e)), f">={e[-1]}"]


@dataclass(frozen=True)
class Assignment:
    """Positive default boxes of one variant on one set, by level (rows) and object size (columns)."""

    variant: str
    levels: list[str]
    anchors: list[int]  # default boxes per level
    matcher: str  # "atss" | "iou"
    iou_thresholds: list[float]  # per level (IoU matcher)
    sizes: list[str]
    objects: list[int]  # per size group
    unassigned: list[int]  # objects with no positive, per size group
    positives: list[list[int]]  # [level][size group]
    iou_sum: list[float]  # per size group: summed IoU of its positive boxes with their object

    def share(self) -> np.ndarray:
        """(levels, sizes): fraction of each size group's positives on each level (NaN: none)."""
        pos = np.asarray(self.positives, float)
        total = pos.sum(0, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, pos / total, np.nan)

    def per_object(self) -> np.ndarray:
        """(sizes,): mean positives per object (NaN: no object in the group)."""
        objs = np.asarray(self.objects, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(objs > 0, np.asarray(self.positives, float).sum(0) / objs, np.nan)

    def mean_iou(self) -> np.ndarray:
        """(sizes,): mean IoU of a positive default box with the object it learns (NaN: none)."""
        pos = np.asarray(self.positives, float).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pos > 0, np.asarray(self.iou_sum) / pos, np.nan)


def _targets(dataset: DetectionDataset, epochs: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(gt_boxes, gt_labels) batches as training sees them; the augmented images are dropped."""
    keys = [(epoch, i) for epoch in range(epochs) for i in range(len(dataset))]
    for start in range(0, len(keys), batch_size):
        _, boxes, labels = collate([dataset[k] for k in keys[start : start + batch_size]])
        yield boxes, labels


def _size_group(boxes: torch.Tensor, input_size: int, edges: Sequence[float]) -> torch.Tensor:
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0) * input_size
    side = (wh[..., 0] * wh[..., 1]).sqrt()
    return torch.bucketize(side, torch.tensor(edges, dtype=side.dtype), right=True)


def _paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of each row of ``a`` (M, 4) xyxy with the same row of ``b``."""
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-12)


@torch.no_grad()
def count_assignment(
    model: SSD, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], edges: Sequence[float] = SIZE_EDGES
) -> Assignment:
    """Run ``model.match`` on each (gt_boxes, gt_labels) batch and count its positives."""
    n_levels, n_sizes = len(model.levels), len(edges) + 1
    positives = torch.zeros(n_levels, n_sizes, dtype=torch.int64)
    objects = torch.zeros(n_sizes, dtype=torch.int64)
    unassigned = torch.zeros(n_sizes, dtype=torch.int64)
    iou_sum = torch.zeros(n_sizes, dtype=torch.float64)
    size = model.config.input_size
    for gt_boxes, gt_labels in batches:
        labels, matched = model.match(gt_boxes, gt_labels)
        pos = labels > 0  # (N, A)
        group = _size_group(matched, size, edges)  # (N, A): size group of the matched object
        flat = model.anchor_levels.expand_as(pos)[pos] * n_sizes + group[pos]
        positives += torch.bincount(flat, minlength=n_levels * n_sizes).view(n_levels, n_sizes)
        iou = _paired_iou(model.anchors_xyxy.expand_as(matched)[pos], matched[pos])
        iou_sum += torch.bincount(group[pos], weights=iou.double(), minlength=n_sizes)
        real = valid_gt(gt_boxes, gt_labels)  # the objects the matchers count
        gt_group = _size_group(gt_boxes, size, edges)
        objects += torch.bincount(gt_group[real], minlength=n_sizes)
        # an object is covered when some positive box regresses to exactly its box
        same = (matched.unsqueeze(1) == gt_boxes.unsqueeze(2)).all(-1) & pos.unsqueeze(1)  # (N, G, A)
        missed = real & ~same.any(-1)
        unassigned += torch.bincount(gt_group[missed], minlength=n_sizes)
    atss = model.variant.atss
    return Assignment(
        variant=model.variant.name,
        levels=[lv.name for lv in model.levels],
        anchors=[lv.num_anchors for lv in model.levels],
        matcher="atss" if atss else "iou",
        iou_thresholds=[float(model.anchor_iou_threshold[start]) for start, _ in model.level_bounds],
        sizes=size_labels(edges),
        objects=objects.tolist(),
        unassigned=unassigned.tolist(),
        positives=positives.tolist(),
        iou_sum=iou_sum.tolist(),
    )


def format_table(a: Assignment) -> str:
    """The assignment as a plain-text table: % of each size group's positives per level."""
    share, per_obj = a.share(), a.per_object()
    pct = lambda v: "-" if np.isnan(v) else f"{100 * v:.0f}%"  # noqa: E731
    rule = "ATSS" if a.matcher == "atss" else "IoU"
    head = f"{'level':<10}{'boxes':>8}{'IoU≥' if rule == 'IoU' else 'rule':>6}" + "".join(f"{s:>9}" for s in a.sizes)
    lines = [f"{a.variant}: share of each object size's positives per level (side in input px)", head]
    for i, name in enumerate(a.levels):
        thr = f"{a.iou_thresholds[i]:.1f}" if rule == "IoU" else "ATSS"
        lines.append(f"{name:<10}{a.anchors[i]:>8,}{thr:>6}" + "".join(f"{pct(v):>9}" for v in share[i]))
    lines.append(f"{'objects':<24}" + "".join(f"{n:>9,}" for n in a.objects))
    lines.append(f"{'positives per object':<24}" + "".join(f"{'-' if np.isnan(v) else f'{v:.1f}':>9}" for v in per_obj))
    lines.append(f"{'mean IoU of a positive':<24}" + "".join(f"{'-' if np.isnan(v) else f'{v:.2f}':>9}" for v in a.mean_iou()))
    missed = [("-" if n == 0 else f"{100 * m / n:.0f}%") for m, n in zip(a.unassigned, a.objects, strict=True)]
    lines.append(f"{'objects without one':<24}" + "".join(f"{m:>9}" for m in missed))
    return "\n".join(lines)


def assignment_of_set(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    set_dir: str | Path,
    variants: Sequence[str],
    epochs: int = 1,
    batch_size: int = 16,
) -> list[Assignment]:
    """One :class:`Assignment` per variant on ``set_dir``'s training split, augmented as training does."""
    transform = build_transform(train_cfg.augmentation, model_cfg.input_size)
    dataset = DetectionDataset(set_dir, train_cfg.split, transform, seed=train_cfg.seed,
                               include_difficult=train_cfg.include_difficult)
    targets = list(_targets(dataset, epochs, batch_size))  # decoded and augmented once, for every variant
    out = []
    for variant in variants:
        # the matcher and default boxes do not depend on the channel width: build the narrowest
        cfg = replace(model_cfg, variant=variant, width=0.0625, backbone_weights=None)
        model = build_detector(cfg, len(dataset.classes), init_backbone=False)
        out.append(count_assignment(model, targets))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.detector.assignment", description=__doc__.split("\n\n")[0])
    p.add_argument("--set", required=True, help="set directory (images/ + annotations.parquet), e.g. data/sets/hr")
    p.add_argument("--variants", nargs="+", default=None, help="model variants (default: params' model.variant)")
    p.add_argument("--params", default="params.yaml", help="params file (sections `model`, `train`)")
    p.add_argument("--epochs", type=int, default=1, help="augmented passes over the training split")
    p.add_argument("--augmentation", default=None, choices=RECIPES, help="override train.augmentation")
    p.add_argument("--json", default=None, help="also write the counts here")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    params = load_params(args.params)
    model_cfg = section(params, "model", ModelConfig)
    train_cfg = section(params, "train", TrainConfig)
    if args.augmentation is not None:
        train_cfg = replace(train_cfg, augmentation=args.augmentation)
    variants = args.variants or [model_cfg.variant]
    results = assignment_of_set(model_cfg, train_cfg, args.set, variants, epochs=args.epochs)
    print(f"{args.set} ({train_cfg.split} split, augmentation {train_cfg.augmentation!r}, {args.epochs} pass(es))")
    for a in results:
        print()
        print(format_table(a))
    if args.json:
        write_json(args.json, {"set": str(args.set), "split": train_cfg.split, "augmentation": train_cfg.augmentation,
                               "epochs": args.epochs, "variants": [asdict(a) for a in results]})
    return 0


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)

__all__ = ["Assignment", "assignment_of_set", "count_assignment", "format_table", "size_labels"]

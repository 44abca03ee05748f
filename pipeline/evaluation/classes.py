"""Which classes to picture: ranked by mean relative area in the evaluated ground truth.

Relative area = box area / image area (METHODS §1), from the COCO ground-truth dict
the evaluation writes (``gt_coco.json``), so the choice follows the data, not a list
of names that only one dataset spells that way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: ``evaluate.pr_classes: auto`` pictures this many of the smallest classes.
AUTO_PR_CLASSES = 4


def mean_relative_area(gt_coco: Mapping[str, Any]) -> dict[str, float]:
    """Class name -> mean (box w·h / image W·H) over its annotations; classes without any are left out."""
    image_area = {im["id"]: float(im["width"]) * float(im["height"]) for im in gt_coco["images"]}
    names = {c["id"]: c["name"] for c in gt_coco["categories"]}
    sums: dict[str, list[float]] = {}
    for a in gt_coco["annotations"]:
        w, h = a["bbox"][2], a["bbox"][3]
        sums.setdefault(names[a["category_id"]], []).append(w * h / image_area[a["image_id"]])
    return {name: sum(v) / len(v) for name, v in sums.items()}


def smallest_classes(gt_coco: Mapping[str, Any], k: int) -> list[str]:
    """The ``k`` classes with the smallest mean relative area (ties: by name), smallest first."""
    areas = mean_relative_area(gt_coco)
    return sorted(areas, key=lambda c: (areas[c], c))[:k]


def resolve_pr_classes(setting: str | Sequence[str], gt_coco: Mapping[str, Any]) -> list[str]:
    """``evaluate.pr_classes`` -> class names: ``auto`` = the smallest classes; a list is checked by name.

    Raises:
        ValueError: a listed class is not one of the ground truth's categories (names the class
            and the known ones), so a misspelling ('pottedplant' vs COCO's 'potted plant') is not
            silently dropped.
    """
    if isinstance(setting, str):
        if setting != "auto":
            raise ValueError(f"evaluate.pr_classes: expected 'auto' or a list of class names, got {setting!r}")
        return smallest_classes(gt_coco, AUTO_PR_CLASSES)
    known = [c["name"] for c in gt_coco["categories"]]
    for name in setting:
        if name not in known:
            raise ValueError(f"evaluate.pr_classes: {name!r} is not a class of the evaluated set (classes: {known})")
    return list(setting)

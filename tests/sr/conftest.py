"""SR test helpers: HR sets from ``make_set`` or genuine photos, LR sets by the degrade code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.data.degrade import DegradeConfig
from pipeline.data.degrade import degrade_set as run_degrade
from pipeline.data.images import write_image
from pipeline.data.schema import (
    ImageRecord,
    images_dir,
    records_to_table,
    table_path,
    write_table,
)


def degrade_set(hr_dir: Path, out: Path, scale: int = 4) -> Path:
    """LR set made by the real degrade stage code (bicubic, antialiased, boxes scaled)."""
    run_degrade(hr_dir, out, DegradeConfig(scale=float(scale), workers=1), progress=False)
    return out


def rec(iid: str, split: str, w: int, h: int, boxes=(), labels=()) -> ImageRecord:
    n = len(labels)
    return ImageRecord(iid, f"{iid}.png", split, w, h, boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                       labels=np.asarray(labels, np.int64), difficult=np.zeros(n, bool),
                       iscrowd=np.zeros(n, bool))


@pytest.fixture
def synthetic_pair(make_set: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path]:
    """Small HR/LR sets (textured images with boxes), sizes not multiples of 4 included."""
    records = [
        rec("a", "train", 130, 98, [[10, 10, 30, 40]], [0]),
        rec("b", "train", 130, 129, [[50, 60, 58, 70], [5, 5, 100, 90]], [1, 0]),
        rec("c", "test", 143, 101, [[20, 30, 29, 37]], [1]),
        rec("d", "test", 128, 96),
    ]
    hr = make_set(records, ["cat", "bottle"], name="hr")
    return hr, degrade_set(hr, tmp_path / "lr")


@pytest.fixture(scope="session")
def photo_pair(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """HR/LR sets of 8 genuine VOC2012 photos downscaled to 160 px (6 train, 2 test)."""
    root = tmp_path_factory.mktemp("photos")
    files = sorted((shared_data / "voc" / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))[:8]
    recs = []
    for i, f in enumerate(files):
        img = Image.open(f).convert("RGB")
        k = 160 / max(img.size)
        img = img.resize((round(img.size[0] * k), round(img.size[1] * k)), Image.Resampling.BICUBIC)
        r = rec(f.stem, "train" if i < 6 else "test", *img.size)
        write_image(images_dir(root / "hr") / r.file_name, np.asarray(img))
        recs.append(r)
    write_table(table_path(root / "hr"), records_to_table(recs, ["object"]))
    return root / "hr", degrade_set(root / "hr", root / "lr")

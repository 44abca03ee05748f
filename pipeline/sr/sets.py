"""Build the SR set and the bicubic x``scale`` baseline set from an LR set, plus the
PSNR/SSIM report and the side-by-side figure.

Both output sets have the HR set's images names and annotation table (restricted to
``splits``): SR output is resized to the exact HR size when ``scale * LR`` differs (see
:func:`pipeline.sr.infer.to_uint8`), so HR boxes apply unchanged.  Quality is measured on
the decoded uint8 images before JPEG encoding, against the HR images of ``metrics_split``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from tqdm import tqdm

from pipeline.atomic import atomic_dir, write_json
from pipeline.data.images import read_image, write_image
from pipeline.data.schema import images_dir, read_table, table_path, write_table
from pipeline.paths import inside
from pipeline.sr.config import SRInferConfig
from pipeline.sr.figure import nearest_upscale, pick_small_boxes, save_side_by_side
from pipeline.sr.infer import bicubic_upscale, super_resolve, to_uint8
from pipeline.sr.pairs import SetMismatchError, match_sets
from pipeline.sr.quality import psnr_y, ssim_y, summarize
from pipeline.sr.weights import load_generator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityReport:
    sr_psnr: float
    sr_ssim: float
    bicubic_psnr: float
    bicubic_ssim: float
    images: int
    split: str

    def to_metrics(self) -> dict:
        """Metrics JSON for ``dvc metrics``."""
        return {
            "sr": {"psnr": round(self.sr_psnr, 4), "ssim": round(self.sr_ssim, 5)},
            "bicubic": {"psnr": round(self.bicubic_psnr, 4), "ssim": round(self.bicubic_ssim, 5)},
            "psnr_gain_db": round(self.sr_psnr - self.bicubic_psnr, 4),
            "images": self.images,
            "split": self.split,
        }


def _filtered_table(hr_dir: Path, splits: list[str]) -> pa.Table:
    table = read_table(table_path(hr_dir))
    return table.filter(pc.is_in(table.column("split"), value_set=pa.array(splits)))


def make_sr_sets(
    lr_dir: str | os.PathLike[str],
    hr_dir: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    sr_out: str | os.PathLike[str],
    bicubic_out: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str] | None,
    figure_path: str | os.PathLike[str] | None,
    cfg: SRInferConfig,
    device: str | torch.device | None = None,
) -> QualityReport:
    """Super-resolve ``cfg.splits`` of the LR set; write SR and bicubic sets, metrics, figure."""
    hr_dir, lr_dir = Path(hr_dir), Path(lr_dir)
    model = load_generator(model_path)
    scale = int(model.upscale)
    pairs, classes = match_sets(hr_dir, lr_dir, scale, splits=cfg.splits)
    if not pairs:
        raise SetMismatchError(f"{hr_dir}: no images in splits {cfg.splits}")
    table = _filtered_table(hr_dir, cfg.splits)
    specs = {s.image_id: s for s in pick_small_boxes(
        [p.hr for p in pairs if p.hr.split == cfg.metrics_split], classes, cfg.figure_crops)}

    lr_images: dict[int, np.ndarray] = {}

    def lr_stream() -> Iterator[np.ndarray]:
        for i, p in enumerate(pairs):
            img = read_image(p.lr_path)
            if (img.shape[1], img.shape[0]) != (p.lr.width, p.lr.height):
                raise SetMismatchError(f"{p.lr_path}: image is {img.shape[1]}x{img.shape[0]}, "
                                       f"table says {p.lr.width}x{p.lr.height}")
            lr_images[i] = img
            yield img

    scores: dict[str, list[float]] = {k: [] for k in ("sr_psnr", "sr_ssim", "bic_psnr", "bic_ssim")}
    figure_rows = []
    with atomic_dir(sr_out) as sr_tmp, atomic_dir(bicubic_out) as bic_tmp:
        outputs = super_resolve(model, lr_stream(), cfg.tile, cfg.tile_overlap, cfg.batch_size, device)
        for i, (p, sr) in enumerate(tqdm(zip(pairs, outputs, strict=True), total=len(pairs), desc="sr infer", unit="img")):
            lr = lr_images.pop(i)
            size = (p.hr.width, p.hr.height)
            sr_img, bic_img = to_uint8(sr, size), bicubic_upscale(lr, size)
            write_image(inside(images_dir(sr_tmp), p.hr.file_name), sr_img)
            write_image(inside(images_dir(bic_tmp), p.hr.file_name), bic_img)
            if p.hr.split != cfg.metrics_split:
                continue
            hr = read_image(p.hr_path)
            if hr.shape[:2] != sr_img.shape[:2]:
                raise SetMismatchError(f"{p.hr_path}: image is {hr.shape[1]}x{hr.shape[0]}, "
                                       f"table says {size[0]}x{size[1]}")
            scores["sr_psnr"].append(psnr_y(sr_img, hr, scale))
            scores["sr_ssim"].append(ssim_y(sr_img, hr, scale))
            scores["bic_psnr"].append(psnr_y(bic_img, hr, scale))
            scores["bic_ssim"].append(ssim_y(bic_img, hr, scale))
            if p.hr.image_id in specs:
                figure_rows.append((specs[p.hr.image_id], {
                    "HR": hr, "LR (nearest)": nearest_upscale(lr, size), "bicubic": bic_img, "SR": sr_img}))
        write_table(table_path(sr_tmp), table)
        write_table(table_path(bic_tmp), table)

    report = QualityReport(summarize(scores["sr_psnr"]), summarize(scores["sr_ssim"]),
                           summarize(scores["bic_psnr"]), summarize(scores["bic_ssim"]),
                           len(scores["sr_psnr"]), cfg.metrics_split)
    if metrics_path is not None:
        write_json(metrics_path, report.to_metrics())
    if figure_path is not None:
        figure_rows.sort(key=lambda r: list(specs).index(r[0].image_id))
        save_side_by_side(figure_path, figure_rows)
    log.info("SR quality on %s (%d images): %s", cfg.metrics_split, report.images, report.to_metrics())
    return report

"""Build the SR set and the bicubic x``scale`` baseline set from an LR set, plus the
PSNR/SSIM report and the side-by-side figure.

Both output sets have the HR set's images names and annotation table (restricted to
``splits``): SR output is resized (PIL bicubic) to the exact HR size when ``scale * LR``
differs (LR sizes are rounded), so HR boxes apply unchanged.  Quality is measured on the
uint8 images before JPEG encoding, against the HR images of ``metrics_split``.

Memory is bounded per image by its width, not its area: SR and bicubic outputs flow as
row bands from the network (or the resize) into the encoder (PNG progressively) and the
quality meters; the HR reference is one decoded Pillow image read band by band, and the
figure keeps only its crop windows (``bench/bench_sr_memory.py`` measures the peak).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from PIL import Image
from tqdm import tqdm

from pipeline.atomic import atomic_dir, write_json
from pipeline.data.bandwriter import write_image_bands
from pipeline.data.images import read_image, read_pil_image
from pipeline.data.schema import images_dir, read_table, table_path, write_table
from pipeline.paths import inside
from pipeline.sr.config import SRInferConfig
from pipeline.sr.figure import CropSpec, crop_window, pick_small_boxes, save_side_by_side
from pipeline.sr.infer import Band, bicubic_bands, resize_bands, super_resolve_bands
from pipeline.sr.pairs import SetMismatchError, match_sets
from pipeline.sr.quality import QualityMeter, summarize
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


def _rows_of_next_image(bands: Iterator[Band]) -> Iterator[np.ndarray]:
    """The row bands of the next image in ``bands``, up to and including its last."""
    for band in bands:
        yield band.rows
        if band.last:
            return


class _Tap:
    """Passes an output image's row bands through, scoring them against the HR image (if
    any) and keeping the rows and columns of a figure window (if any)."""

    def __init__(self, hr: Image.Image | None, crop: int, window: tuple[int, int, int, int] | None) -> None:
        self.hr, self.window = hr, window
        self.meter = QualityMeter(hr.width, hr.height, crop) if hr is not None else None
        self.parts: list[np.ndarray] = []

    def __call__(self, bands: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        y = 0
        for rows in bands:
            if self.meter is not None:
                self.meter.add(rows, np.asarray(self.hr.crop((0, y, self.hr.width, y + len(rows)))))
            if self.window is not None:
                x0, y0, x1, y1 = self.window
                self.parts.append(rows[max(0, y0 - y):max(0, y1 - y), x0:x1].copy())
            y += len(rows)
            yield rows

    def crop(self) -> np.ndarray:
        return np.concatenate(self.parts)


def _figure_row(spec: CropSpec, window: tuple[int, int, int, int], lr: np.ndarray, hr: Image.Image,
                size: tuple[int, int], bic: _Tap, sr: _Tap) -> tuple[CropSpec, dict[str, np.ndarray]]:
    """The figure's crops of one image, with the box moved into the crop window; the figure
    then shows the same window as it would of the whole images."""
    x0, y0, x1, y1 = window
    sx, sy = lr.shape[1] / size[0], lr.shape[0] / size[1]
    nearest = Image.fromarray(lr).resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST,
                                         box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy))
    box = spec.box - np.array([x0, y0, x0, y0], spec.box.dtype)
    return CropSpec(spec.image_id, box, spec.label), {
        "HR": np.asarray(hr.crop(window)), "LR (nearest)": np.asarray(nearest),
        "bicubic": bic.crop(), "SR": sr.crop()}


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
        bands = super_resolve_bands(model, lr_stream(), cfg.tile, cfg.tile_overlap, cfg.batch_size, device)
        for i, p in enumerate(tqdm(pairs, desc="sr infer", unit="img")):
            size = (p.hr.width, p.hr.height)
            hr = read_pil_image(p.hr_path) if p.hr.split == cfg.metrics_split else None
            if hr is not None and hr.size != size:
                raise SetMismatchError(f"{p.hr_path}: image is {hr.width}x{hr.height}, "
                                       f"table says {size[0]}x{size[1]}")
            spec = specs.get(p.hr.image_id) if hr is not None else None
            window = crop_window(spec.box, *size) if spec is not None else None
            sr, bic = _Tap(hr, scale, window), _Tap(hr, scale, window)
            sr_size = (scale * p.lr.width, scale * p.lr.height)
            sr_rows = resize_bands(_rows_of_next_image(bands), sr_size, size)
            write_image_bands(inside(images_dir(sr_tmp), p.hr.file_name), size, sr(sr_rows))
            lr = lr_images.pop(i)  # read by now: its SR output is written
            write_image_bands(inside(images_dir(bic_tmp), p.hr.file_name), size, bic(bicubic_bands(lr, size)))
            if sr.meter is not None and bic.meter is not None:
                scores["sr_psnr"].append(sr.meter.psnr())
                scores["sr_ssim"].append(sr.meter.ssim())
                scores["bic_psnr"].append(bic.meter.psnr())
                scores["bic_ssim"].append(bic.meter.ssim())
            if spec is not None and window is not None and hr is not None:
                figure_rows.append(_figure_row(spec, window, lr, hr, size, bic, sr))
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

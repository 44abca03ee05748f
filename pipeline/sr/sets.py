"""Build the SR sets (one per generator: SRResNet ``sr``, SRGAN ``srgan``) and the bicubic
x``scale`` baseline set from an LR set, plus the PSNR/SSIM report and the side-by-side figure.

The output sets have the HR set's images names and annotation table (restricted to
``splits``): SR output is resized (PIL bicubic) to the exact HR size when ``scale * LR``
differs (LR sizes are rounded), so HR boxes apply unchanged.  Quality is measured on the
uint8 images before JPEG encoding, against the HR images of ``metrics_split``.

Memory is bounded per image by its width, not its area: SR and bicubic outputs flow as
row bands from the network (or the resize) into the encoder (PNG progressively) and the
quality meters; the HR reference is one decoded Pillow image read band by band, and the
figure keeps only its crop windows (``bench/bench_sr_memory.py`` measures the peak).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from pipeline.atomic import atomic_dir, write_json
from pipeline.data.bandwriter import write_image_bands
from pipeline.data.images import read_image, read_pil_image
from pipeline.data.schema import images_dir, read_table, table_path, write_table
from pipeline.paths import inside
from pipeline.sr.config import SRInferConfig
from pipeline.sr.figure import CropSpec, crop_window, pick_small_boxes, save_side_by_side
from pipeline.sr.infer import Band, bicubic_bands, resize_bands, super_resolve_bands
from pipeline.sr.pairs import Pair, SetMismatchError, match_sets
from pipeline.sr.quality import QualityMeter, summarize
from pipeline.sr.weights import load_generator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityReport:
    """Mean PSNR (dB) and SSIM per output set (each generator's name and ``bicubic``)."""

    psnr: dict[str, float]
    ssim: dict[str, float]
    images: int
    split: str

    @property
    def sr_psnr(self) -> float:
        return self.psnr["sr"]

    @property
    def bicubic_psnr(self) -> float:
        return self.psnr["bicubic"]

    def to_metrics(self) -> dict:
        """Metrics JSON: ``{<set>: {psnr, ssim}}`` for every set, ``psnr_gain_db`` (sr − bicubic)
        and ``<name>_psnr_gain_db`` for every other generator (``srgan_psnr_gain_db``)."""
        out: dict = {name: {"psnr": round(self.psnr[name], 4), "ssim": round(self.ssim[name], 5)}
                     for name in self.psnr}
        for name in self.psnr:
            if name != "bicubic":
                key = "psnr_gain_db" if name == "sr" else f"{name}_psnr_gain_db"
                out[key] = round(self.psnr[name] - self.psnr["bicubic"], 4)
        return out | {"images": self.images, "split": self.split}


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


def _figure_crops(window: tuple[int, int, int, int], lr: np.ndarray, hr: Image.Image,
                  size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The HR and nearest-upscaled LR crops of a figure window (the same window as of the whole images)."""
    x0, y0, x1, y1 = window
    sx, sy = lr.shape[1] / size[0], lr.shape[0] / size[1]
    nearest = Image.fromarray(lr).resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST,
                                         box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy))
    return {"HR": np.asarray(hr.crop(window)), "LR (nearest)": np.asarray(nearest)}


class _Pass:
    """One generator's pass over the pairs: its set (and, on the first pass, the bicubic
    set, whose scores and figure crops it also collects)."""

    def __init__(self, pairs: list[Pair], scale: int, cfg: SRInferConfig, specs: dict[str, CropSpec]) -> None:
        self.pairs, self.scale, self.cfg, self.specs = pairs, scale, cfg, specs
        self.scores: dict[str, dict[str, list[float]]] = {}
        self.crops: dict[str, dict[str, np.ndarray]] = {}  # image id -> column -> crop
        self.windows: dict[str, tuple[int, int, int, int]] = {}  # image id -> its crop window

    def _score(self, name: str, tap: _Tap) -> None:
        if tap.meter is not None:
            s = self.scores.setdefault(name, {"psnr": [], "ssim": []})
            s["psnr"].append(tap.meter.psnr())
            s["ssim"].append(tap.meter.ssim())

    def run(self, name: str, model: nn.Module, out: Path, bicubic: Path | None, device: str | torch.device | None) -> None:
        lr_images: dict[int, np.ndarray] = {}

        def lr_stream() -> Iterator[np.ndarray]:
            for i, p in enumerate(self.pairs):
                img = read_image(p.lr_path)
                if (img.shape[1], img.shape[0]) != (p.lr.width, p.lr.height):
                    raise SetMismatchError(f"{p.lr_path}: image is {img.shape[1]}x{img.shape[0]}, "
                                           f"table says {p.lr.width}x{p.lr.height}")
                lr_images[i] = img
                yield img

        cfg, scale = self.cfg, self.scale
        bands = super_resolve_bands(model, lr_stream(), cfg.tile, cfg.tile_overlap, cfg.batch_size, device)
        for i, p in enumerate(tqdm(self.pairs, desc=f"{name} infer", unit="img")):
            size = (p.hr.width, p.hr.height)
            hr = read_pil_image(p.hr_path) if p.hr.split == cfg.metrics_split else None
            if hr is not None and hr.size != size:
                raise SetMismatchError(f"{p.hr_path}: image is {hr.width}x{hr.height}, "
                                       f"table says {size[0]}x{size[1]}")
            spec = self.specs.get(p.hr.image_id) if hr is not None else None
            window = crop_window(spec.box, *size) if spec is not None else None
            sr = _Tap(hr, scale, window)
            sr_rows = resize_bands(_rows_of_next_image(bands), (scale * p.lr.width, scale * p.lr.height), size)
            write_image_bands(inside(images_dir(out), p.hr.file_name), size, sr(sr_rows))
            lr = lr_images.pop(i)  # read by now: its SR output is written
            self._score(name, sr)
            crops = self.crops.setdefault(p.hr.image_id, {})
            if window is not None:
                self.windows[p.hr.image_id] = window
            if bicubic is not None:
                bic = _Tap(hr, scale, window)
                write_image_bands(inside(images_dir(bicubic), p.hr.file_name), size, bic(bicubic_bands(lr, size)))
                self._score("bicubic", bic)
                if window is not None and hr is not None:
                    crops |= _figure_crops(window, lr, hr, size) | {"bicubic": bic.crop()}
            if window is not None:
                crops[name.upper()] = sr.crop()

    def figure_rows(self) -> list[tuple[CropSpec, dict[str, np.ndarray]]]:
        """Per pictured box: its spec moved into the crop window, and every column's crop."""
        rows = []
        for iid, spec in self.specs.items():
            if iid in self.windows:
                x0, y0, _, _ = self.windows[iid]
                box = spec.box - np.array([x0, y0, x0, y0], spec.box.dtype)
                rows.append((CropSpec(iid, box, spec.label), self.crops[iid]))
        return rows


def make_sr_sets(
    lr_dir: str | os.PathLike[str],
    hr_dir: str | os.PathLike[str],
    generators: Mapping[str, tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    bicubic_out: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str] | None,
    figure_path: str | os.PathLike[str] | None,
    cfg: SRInferConfig,
    device: str | torch.device | None = None,
) -> QualityReport:
    """Super-resolve ``cfg.splits`` of the LR set with every generator; write their sets, the
    bicubic set, the metrics and the figure (columns HR, LR, bicubic, then one per generator).

    Args:
        generators: set name -> (generator weights, output set dir), e.g.
            ``{"sr": (srresnet.pth, data/sets/sr), "srgan": (srgan.pth, data/sets/srgan)}``;
            every generator must have the same scale.
    """
    if not generators:
        raise ValueError("make_sr_sets: no generator given")
    hr_dir, lr_dir = Path(hr_dir), Path(lr_dir)
    models = {name: load_generator(path) for name, (path, _) in generators.items()}
    scales = {name: int(m.upscale) for name, m in models.items()}
    scale = next(iter(scales.values()))
    if len(set(scales.values())) > 1:
        raise SetMismatchError(f"generators of different scales: {scales} ({dict(generators)})")
    pairs, classes = match_sets(hr_dir, lr_dir, scale, splits=cfg.splits)
    if not pairs:
        raise SetMismatchError(f"{hr_dir}: no images in splits {cfg.splits}")
    table = _filtered_table(hr_dir, cfg.splits)
    specs = {s.image_id: s for s in pick_small_boxes(
        [p.hr for p in pairs if p.hr.split == cfg.metrics_split], classes, cfg.figure_crops)}

    run = _Pass(pairs, scale, cfg, specs)
    with contextlib.ExitStack() as stack:
        bic_tmp = stack.enter_context(atomic_dir(bicubic_out))
        for k, (name, model) in enumerate(models.items()):
            out_tmp = stack.enter_context(atomic_dir(generators[name][1]))
            run.run(name, model, out_tmp, bic_tmp if k == 0 else None, device)
            write_table(table_path(out_tmp), table)
        write_table(table_path(bic_tmp), table)

    names = [*models, "bicubic"]
    report = QualityReport({n: summarize(run.scores.get(n, {}).get("psnr", [])) for n in names},
                           {n: summarize(run.scores.get(n, {}).get("ssim", [])) for n in names},
                           len(run.scores.get("bicubic", {}).get("psnr", [])), cfg.metrics_split)
    if metrics_path is not None:
        write_json(metrics_path, report.to_metrics())
    if figure_path is not None:
        save_side_by_side(figure_path, run.figure_rows(),
                          cols=["HR", "LR (nearest)", "bicubic", *map(str.upper, models)])
    log.info("SR quality on %s (%d images): %s", cfg.metrics_split, report.images, report.to_metrics())
    return report
